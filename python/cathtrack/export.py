"""Model files: ``.pt2`` (torch.export + AOTInductor), ``.ts`` (TorchScript), ``.onnx`` (ONNX).

An exported file holds the network and a flat string->string metadata map that the native
engine checks before it loads anything (``src/cpp/runtime/metadata.hpp`` lists what this build
understands; docs/runtime.md describes every key):

- ``.pt2``: ``torch.export.export(strict=True)`` then ``torch._inductor.aoti_compile_and_package``,
  compiled for this machine (CPU instruction set, or GPU) — the fast path. The metadata goes into
  the package through ``inductor_configs["aot_inductor.metadata"]``; AOTInductor adds its own
  ``AOTI_*`` keys, and ``AOTIModelPackageLoader::load_metadata_from_package`` reads it back
  without loading the compiled code.
- ``.ts``: ``torch.jit.script`` then ``torch.jit.save`` with the metadata as the extra file
  ``cathtrack.json`` (a flat JSON object of strings). Portable, but torch.jit is deprecated.
- ``.onnx``: ``torch.onnx.export(dynamo=True)`` at opset :data:`ONNX_OPSET` with a dynamic batch
  axis, the metadata in the model's ``metadata_props``, checked by ``onnx.checker`` before it is
  written. For onnxruntime, OpenVINO and TensorRT (:mod:`cathtrack.onnx_backend`, docs/deploy.md);
  not read by the native engine.
- ``.pt2`` with ``int8``: the network quantised to int8 by :mod:`cathtrack.quantize`, then
  compiled as above; the native engine runs it like any ``.pt2``.

Files are written atomically (a temporary file in the target folder, then ``os.replace``), so a
reader never sees half a file. :func:`cached_export` keeps exports of a checkpoint in the user's
cache folder, keyed by what makes a compiled file reusable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cathtrack.coordinates import OUTPUT_STRIDE
from cathtrack.device import check_device, dtype_name, half_dtype

FORMATS = ("pt2", "ts", "onnx")
FILE_FORMAT = "cathtrack-model-file"
FORMAT_VERSION = 1
# The preprocessing the network was trained with (cathtrack/data/normalize.py): the percentile
# stretch of normalize_frame, then resize_frame's antialiased bilinear resize. Version 1.
NORMALIZATION = "percentile-stretch+bilinear-antialias"
NORMALIZATION_VERSION = 1
HEADS = "segmentation_logits,center_heatmap,size"
OUTPUT_STRIDES = f"1,{OUTPUT_STRIDE},{OUTPUT_STRIDE}"  # of the paper's model (heatmap stride 4)
TORCHSCRIPT_METADATA_FILE = "cathtrack.json"
# ONNX: the opset the dynamo exporter translates to natively (asking it for 17 makes it run
# onnx's version converter, which fails on this network's ReduceMean); read by onnxruntime,
# OpenVINO and TensorRT 10 and later. The input's name; the outputs are named after HEADS.
ONNX_OPSET = 18
ONNX_INPUT = "image"


def output_strides(heatmap_stride: int) -> str:
    """Metadata ``output_strides``, the strides of the three heads relative to the input:
    ``"1,s,s"`` (segmentation at full resolution, heatmap and size at the heatmap stride s)."""
    return f"1,{heatmap_stride},{heatmap_stride}"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (:func:`cathtrack.checkpoint.file_sha256`)."""
    from cathtrack.checkpoint import file_sha256 as sha256_of_file

    return sha256_of_file(path)


def inductor_configs(device: str) -> dict:
    """AOTInductor options of a ``.pt2`` export (part of the cache key).

    On the CPU, freezing folds the weights in as constants so Inductor can fold BatchNorm into
    the convolutions and pre-pack their weights in oneDNN's blocked layout once, at export,
    instead of reordering them at every call (ResNet34 fp32: ~12 % faster, bf16: ~2x).
    """
    configs: dict = {"aot_inductor.package_constants_in_so": True}  # one self-contained file
    if device == "cpu":
        configs["freezing"] = True
    return configs


def build_metadata(
    weights: Path,
    document: dict[str, Any],
    model_format: str,
    device: str,
    half: bool,
    quantization: dict[str, str] | None = None,
) -> dict[str, str]:
    """The metadata map of a model file exported from a checkpoint (all values are strings).

    Args:
        weights: the checkpoint's ``.safetensors`` file (hashed: ``source_sha256``).
        document: its JSON metadata (:func:`cathtrack.checkpoint.read_metadata`).
        model_format: "pt2", "ts" or "onnx".
        device: "cpu" or "cuda", where the file is meant to run (an ONNX file runs anywhere:
            it gets no ``device`` key).
        half: 16-bit weights and input (:func:`half_dtype`; float16 in an ONNX file).
        quantization: the ``quantization*`` keys of an int8 network
            (:func:`cathtrack.quantize.quantization_metadata`), or None.
    """
    from cathtrack import __version__
    from cathtrack.model import ModelConfig

    sha = file_sha256(weights)
    model = document["model"]
    # a model dict without heatmap_stride (written before strides 2 and 1) is a stride-4 model
    stride = ModelConfig.from_dict(model).heatmap_stride
    metadata = {
        "format": FILE_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "model_format": model_format,
        "input_size": str(int(document["input_size"])),
        "in_channels": str(int(model.get("in_channels", 1))),
        "normalization": NORMALIZATION,
        "normalization_version": str(NORMALIZATION_VERSION),
        "output_strides": output_strides(stride),
        "heads": HEADS,
        # Content-derived: two files with the same model_version hold the same weights.
        "model_version": sha[:16],
        "model_config": json.dumps(model, sort_keys=True),
        "training_config_hash": str(document.get("training", {}).get("config_hash", "")),
        "source_sha256": sha,
        "dtype": dtype_name(network_dtype(model_format, device, half)),
        "device": device,
        "torch_version": torch.__version__,
        "cathtrack_version": __version__,
    }
    if model_format == "pt2" and device == "cpu":
        metadata["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    if model_format == "onnx":
        del metadata["device"]
        metadata.update(onnx_opset=str(ONNX_OPSET), input_name=ONNX_INPUT)
    metadata.update(quantization or {})
    return metadata


def network_dtype(model_format: str, device: str, half: bool) -> torch.dtype:
    """The float type of an exported network: float32, or with ``half`` the device's 16-bit type
    (:func:`half_dtype`); an ONNX file's 16-bit type is float16, which every ONNX runtime and
    TensorRT compute (bfloat16 support among them is patchy)."""
    if not half:
        return torch.float32
    return torch.float16 if model_format == "onnx" else half_dtype(device)


def export_model(
    checkpoint: str | Path,
    out: str | Path,
    model_format: str = "pt2",
    device: str = "cpu",
    half: bool = False,
    *,
    int8: bool = False,
    calibration: str | Path | None = None,
    calibration_frames: int | None = None,
) -> Path:
    """Exports a checkpoint to a ``.pt2``, ``.ts`` or ``.onnx`` model file, atomically.

    Args:
        checkpoint: ``.safetensors``/``.json`` model file or checkpoint directory.
        out: the model file to write; its suffix must match ``model_format``.
        model_format: "pt2" (AOTInductor, compiled for this machine), "ts" (TorchScript) or
            "onnx" (device-independent; ``device`` must be "cpu", where it is exported).
        device: "cpu" or "cuda".
        half: 16-bit floats (:func:`network_dtype`: float16 on CUDA and in ONNX, bfloat16 on
            the CPU).
        int8: quantise the network to int8 (:mod:`cathtrack.quantize`; "pt2" on the CPU only).
        calibration: frames to calibrate the int8 network on (anything
            :func:`cathtrack.io.iter_inputs` reads); None: synthetic clinical frames.
        calibration_frames: how many frames calibrate it (None: the quantiser's default).

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: bad format/suffix/device, or a checkpoint the runtime cannot run.
        FileNotFoundError: missing checkpoint files.
        ModuleNotFoundError: "onnx" or ``int8`` without their optional packages (named).
    """
    from cathtrack.checkpoint import load_model, model_paths

    if model_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {model_format!r}")
    out = Path(out)
    if out.suffix != f".{model_format}":
        raise ValueError(f"{out}: a {model_format} model file must end in .{model_format}")
    if model_format == "onnx" and device != "cpu":
        raise ValueError("an ONNX file runs on any device: export it with device 'cpu'")
    if int8 and (model_format != "pt2" or device != "cpu" or half):
        raise ValueError("int8 is a .pt2 for the CPU: format pt2, device cpu, without half")
    if (calibration is not None or calibration_frames is not None) and not int8:
        raise ValueError("calibration frames are for an int8 export")
    check_device(device, half and model_format != "onnx")
    model, document = load_model(checkpoint, device)
    if model.config.in_channels != 1:
        raise ValueError(
            f"{checkpoint}: the runtime feeds one grey channel; this model has "
            f"{model.config.in_channels} input channels"
        )
    weights, _ = model_paths(checkpoint)
    size = int(document["input_size"])
    quantization = None
    if int8:
        from cathtrack import quantize

        images, source = quantize.calibration_images(size, calibration, calibration_frames)
        model = quantize.quantize_int8(model, images)
        quantization = quantize.quantization_metadata(source)
    metadata = build_metadata(weights, document, model_format, device, half, quantization)
    dtype = network_dtype(model_format, device, half)
    example = torch.rand(1, 1, size, size, device=device)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(out) as temporary:
        if model_format == "onnx":
            _write_onnx(model.to(dtype), metadata, temporary)
        elif model_format == "pt2":
            model = model if int8 else model.to(dtype)
            configs = inductor_configs(device)
            _write_package(model, example.to(dtype), metadata, configs, temporary)
        else:
            _write_torchscript(model.to(dtype), metadata, temporary)
    return out


def _write_package(
    model: torch.nn.Module, example: torch.Tensor, metadata: dict, configs: dict, path: Path
):
    with torch.no_grad():
        program = torch.export.export(model, (example,), strict=True)
        torch._inductor.aoti_compile_and_package(
            program,
            package_path=str(path),
            inductor_configs={"aot_inductor.metadata": metadata, **configs},
        )


class _FloatBoundary(torch.nn.Module):
    """A float16 network behind float32 input and outputs: an ONNX file exported with ``half``
    takes and gives what a float32 one does, so preprocessing and decoding stay the same."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        segmentation, heatmap, size = self.network(image.to(torch.float16))
        return segmentation.float(), heatmap.float(), size.float()


def _write_onnx(model: torch.nn.Module, metadata: dict, path: Path):
    """The dynamo exporter (torch.export, then onnxscript's translation and graph optimiser):
    torch's default and maintained exporter, where the TorchScript one is deprecated with
    torch.jit. The batch axis is dynamic; the example has 2 frames because torch.export
    specialises a dimension of size 1. The source lines the exporter records on every node are
    dropped: they name folders of the exporting machine."""
    try:
        import onnx
        import onnxscript  # noqa: F401 - the dynamo exporter needs it; say so before it starts
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"ONNX export needs the onnx extra ({error.name} is missing): "
            "pip install 'cathtrack[onnx]'"
        ) from None
    if next(model.parameters()).dtype == torch.float16:
        model = _FloatBoundary(model).eval()
    size = int(metadata["input_size"])
    example = torch.rand(2, 1, size, size)
    # The exporter warns about torchvision's ops (which this network does not use) and about a
    # torch-internal deprecation; neither concerns the user.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[ONNX_INPUT],
                output_names=HEADS.split(","),
                opset_version=ONNX_OPSET,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    proto = program.model_proto
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    proto.doc_string = (
        "cathtrack: catheter segmentation logits, electrode centre heatmap and size map of "
        "normalised X-ray frames; metadata_props say how to feed and decode it"
    )
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    path.write_bytes(proto.SerializeToString())


def _write_torchscript(model: torch.nn.Module, metadata: dict, path: Path):
    # Saved unoptimised: a module saved after optimize_for_inference cannot be loaded again.
    scripted = torch.jit.script(model)
    torch.jit.save(
        scripted,
        str(path),
        _extra_files={TORCHSCRIPT_METADATA_FILE: json.dumps(metadata, sort_keys=True)},
    )


@contextlib.contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """A path with ``target``'s name in a private temporary folder beside it, renamed onto
    ``target`` when the block succeeds (same file system: the rename is atomic).

    Keeping the name matters: AOTInductor requires the ``.pt2`` suffix and names the archive's
    root folder after the file. The file and the folder are fsync'ed as
    :func:`cathtrack.checkpoint.atomic_file` does (that one hands out an open file; the exporters
    need a path). On error ``target`` is left as it was; the temporary folder always goes.
    """
    from cathtrack.checkpoint import fsync_directory

    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    temporary = folder / target.name
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        fsync_directory(target.parent)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_model_metadata(path: str | Path) -> dict[str, str]:
    """The checked metadata of a ``.pt2``/``.ts``/``.onnx`` file, without loading its code or
    weights (an ONNX file's: :func:`cathtrack.onnx_backend.read_onnx_metadata`).

    Raises:
        FileNotFoundError: no such file.
        ValueError (``cathtrack._native.ModelFileError``): wrong suffix, corrupt or foreign
            file, or metadata this build does not understand; the message names the file and
            is one line.
    """
    from cathtrack import _native

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.suffix == ".onnx":
        from cathtrack.onnx_backend import read_onnx_metadata

        return read_onnx_metadata(path)
    try:
        return dict(_native.read_model_metadata(str(path)))
    except _native.ModelFileError as error:
        raise _native.ModelFileError(" ".join(str(error).split())) from None


class PackagedNetwork(torch.nn.Module):
    """A CPU ``.pt2`` run by torch's own AOTInductor loader, as a module the Python pipeline
    (:func:`cathtrack.pipeline.predict`, ``cathtrack eval``) calls like the eager network: the
    compiled code and weights are the native engine's. A ``.pt2`` takes batches of one frame,
    so a batch is run frame by frame.

    Raises:
        ValueError: what :func:`check_model_file` refuses, or a CUDA package.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.metadata = check_model_file(path)
        if Path(path).suffix != ".pt2" or self.metadata["device"] != "cpu":
            raise ValueError(f"{path}: PackagedNetwork runs CPU .pt2 files only")
        self.runner = torch._inductor.aoti_load_package(str(path))
        # predict() casts its input to the dtype of the module's first parameter: the file's
        dtype = getattr(torch, self.metadata["dtype"])
        self.input_dtype = torch.nn.Parameter(torch.empty(0, dtype=dtype), requires_grad=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = [self.runner(frame[None]) for frame in image]
        return tuple(torch.cat([out[k] for out in outputs]) for k in range(3))


def running_torch_version() -> str:
    """The version of the torch in this process (``torch.__version__``), read without importing
    torch when it is not imported yet (the native engine links the same libtorch)."""
    import sys

    if "torch" in sys.modules:
        return str(sys.modules["torch"].__version__)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return str(torch.__version__)


def check_model_file(path: str | Path) -> dict[str, str]:
    """:func:`read_model_metadata`, and for a ``.pt2`` the torch version it was compiled with.

    An AOTInductor package holds machine code built against one torch's C++ ABI; loaded by
    another torch it can crash the process instead of raising, so it is refused here, before
    the engine or ``torch._inductor`` opens it. (A ``.ts`` file is portable across versions.)

    Raises:
        FileNotFoundError: no such file.
        ValueError: what :func:`read_model_metadata` refuses, or a ``.pt2`` from another torch.
    """
    path = Path(path)
    metadata = read_model_metadata(path)
    if path.suffix == ".pt2":
        recorded, running = metadata.get("torch_version", ""), running_torch_version()
        if recorded != running:
            raise ValueError(
                f"{path}: compiled by torch {recorded or '(version not recorded)'} but this is "
                f"torch {running}; an AOTInductor .pt2 runs only with the torch that built it "
                "(another one can crash the process): export it again here "
                "(cathtrack export CHECKPOINT --format pt2)"
            )
    return metadata


# ---- the export cache ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where exported models are cached: ``$CATHTRACK_CACHE``, else ``$XDG_CACHE_HOME/cathtrack``,
    else ``~/.cache/cathtrack``."""
    if os.environ.get("CATHTRACK_CACHE"):
        return Path(os.environ["CATHTRACK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cathtrack"


def machine_features(device: str) -> str:
    """What compiled code depends on: the CPU instruction set, or the GPU's name and capability."""
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        return f"{torch.cuda.get_device_name()} sm_{major}{minor} cuda {torch.version.cuda}"
    return torch.backends.cpu.get_cpu_capability()


def cache_key(
    checkpoint: str | Path,
    model_format: str = "pt2",
    device: str = "cpu",
    half: bool = False,
    int8: bool = False,
) -> str:
    """Hex SHA-256 naming the cached export of a checkpoint.

    It changes with the weights (SHA-256 of the ``.safetensors``), the checkpoint's JSON (input
    size, architecture), the torch version, the device and its features (CPU instruction set or
    GPU), the precision (and for int8 the quantisation scheme and its calibration), the file
    format and this exporter's format version.
    """
    from cathtrack.checkpoint import model_paths

    weights, document = model_paths(checkpoint)
    facts = {
        "weights_sha256": file_sha256(weights),
        "metadata_sha256": file_sha256(document),
        "torch": torch.__version__,
        "device": device,
        "machine": machine_features(device),
        "half": bool(half),
        "format": model_format,
        "inductor_configs": inductor_configs(device) if model_format == "pt2" else None,
        "format_version": FORMAT_VERSION,
    }
    if int8:  # only then: the keys of float exports stay what they were
        from cathtrack.quantize import quantization_metadata

        facts["quantization"] = quantization_metadata(None)
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def cached_export(
    checkpoint: str | Path,
    model_format: str = "pt2",
    device: str = "cpu",
    half: bool = False,
    int8: bool = False,
) -> Path:
    """The cached model file of a checkpoint, exported first if it is not in the cache yet
    (``int8``: calibrated on the default synthetic frames, :mod:`cathtrack.quantize`).

    Two processes exporting the same entry at once both write complete files and the last
    rename wins, so a reader always finds a whole file. The checkpoint is checked first
    (:func:`cathtrack.checkpoint.read_metadata`; the weights hash and architecture by
    :func:`~cathtrack.checkpoint.load_model` when it is exported).

    Raises:
        FileNotFoundError: a missing weights or JSON file (named).
        ValueError: a checkpoint that fails a check (named).
    """
    from cathtrack.checkpoint import model_paths, read_metadata

    check_device(device, half and model_format != "onnx")
    weights, _ = model_paths(checkpoint)
    read_metadata(checkpoint)  # a missing or foreign JSON: a clear error naming it, not errno 2
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: model weights not found")
    key = cache_key(checkpoint, model_format, device, half, int8)
    path = cache_dir() / f"{weights.stem}-{key[:24]}.{model_format}"
    if not path.is_file():
        export_model(checkpoint, path, model_format, device, half, int8=int8)
    return path
