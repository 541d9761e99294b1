"""ONNX model files run by onnxruntime: the network of ``Tracker(backend="onnxruntime")``.

A ``.onnx`` file written by ``cathtrack export --format onnx`` (:func:`cathtrack.export.
export_model`) holds the network and, in its ``metadata_props``, the metadata of every cathtrack
model file (docs/runtime.md) plus ``onnx_opset`` and ``input_name``. Its graph:

- input ``image``: (batch, 1, S, S) float32, the frame normalised and resized to the model's
  input (:func:`cathtrack.pipeline.preprocess`);
- outputs ``segmentation_logits`` (batch, 1, S, S), ``center_heatmap`` (batch, 1, S/s, S/s)
  probabilities and ``size`` (batch, 2, S/s, S/s) in input pixels, float32 (a file exported
  with ``--half`` computes in float16 between casts at its boundary).

The tracker decodes the outputs as the Python reference does (:func:`cathtrack.pipeline.decode`:
peaks, thinning, centerlines and catheter types by the native post-processing core), so the
ONNX backend and the reference agree to within the runtimes' float rounding.

onnxruntime and onnx are optional (``pip install 'cathtrack[onnx]'``): a missing one is named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RUNTIMES = ("onnxruntime",)
_DTYPES = ("float32", "float16")


def _import(name: str):
    """The optional module ``name``, or a one-line ModuleNotFoundError saying how to install it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"{name} is not installed: the ONNX backend needs the onnx extra "
            "(pip install 'cathtrack[onnx]')"
        ) from None


def check_onnx_metadata(metadata: dict[str, str], source: str) -> dict[str, str]:
    """``metadata`` when it is a cathtrack ONNX file's that this version reads (the checks the
    native engine makes of a ``.pt2``/``.ts`` file's, src/cpp/runtime/metadata.cpp).

    Raises:
        ValueError (``cathtrack._native.ModelFileError``): a foreign file or a value this
            version does not understand; the message starts with ``source``.
    """
    from cathtrack import _native, export

    def fail(reason: str):
        raise _native.ModelFileError(f"{source}: {reason}")

    def require(key: str) -> str:
        if key not in metadata:
            fail(f"metadata has no '{key}' (not a model file written by cathtrack export)")
        return metadata[key]

    expected = {
        "format": export.FILE_FORMAT,
        "model_format": "onnx",
        "normalization": export.NORMALIZATION,
        "normalization_version": str(export.NORMALIZATION_VERSION),
        "heads": export.HEADS,
        "in_channels": "1",
    }
    for key, value in expected.items():
        if require(key) != value:
            fail(f"metadata {key} is '{metadata[key]}', this version of cathtrack reads '{value}'")
    version = require("format_version")
    if version != str(export.FORMAT_VERSION):
        fail(
            f"model file format_version '{version}' is not supported; this version of cathtrack "
            f"reads format_version {export.FORMAT_VERSION}"
        )
    strides = [export.output_strides(s) for s in (4, 2, 1)]
    if require("output_strides") not in strides:
        fail(
            f"metadata output_strides is '{metadata['output_strides']}', this version of "
            f"cathtrack understands only {', '.join(strides)}"
        )
    size = require("input_size")
    if not size.isdigit() or not 32 <= int(size) <= 8192 or int(size) % 32:
        fail(f"metadata input_size '{size}' is not a multiple of 32 between 32 and 8192")
    if require("dtype") not in _DTYPES:
        fail(f"metadata dtype '{metadata['dtype']}' is not supported ({' or '.join(_DTYPES)})")
    require("model_version")
    require("training_config_hash")
    return metadata


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The checked metadata of a ``.onnx`` model file, read with onnx (the graph is parsed,
    nothing runs).

    Raises:
        FileNotFoundError: no such file.
        ValueError (``cathtrack._native.ModelFileError``): not an ONNX file, or not one
            :func:`check_onnx_metadata` accepts.
        ModuleNotFoundError: onnx is not installed.
    """
    from cathtrack import _native

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    onnx = _import("onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and friends
        reason = " ".join(str(error).split()) or type(error).__name__
        raise _native.ModelFileError(f"{path}: not a readable ONNX file ({reason})") from None
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    return check_onnx_metadata(metadata, str(path))


def pick_onnx_device(device: str) -> str:
    """ "auto" -> "cuda" when onnxruntime has its CUDA provider, else "cpu"; "cpu" and "cuda"
    as they are (:class:`OnnxNetwork` checks that "cuda" can run).

    Raises:
        ValueError: another name.
        ModuleNotFoundError: onnxruntime is not installed.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device != "auto":
        return device
    providers = _import("onnxruntime").get_available_providers()
    return "cuda" if "CUDAExecutionProvider" in providers else "cpu"


class OnnxNetwork:
    """An exported ``.onnx`` network in an onnxruntime session: a batch in, the three heads out.

    Args:
        path: the ``.onnx`` file (its metadata is checked first).
        device: "cpu", or "cuda" (onnxruntime's CUDA provider, from the onnxruntime-gpu wheel).
        threads: intra-op threads of the session (0: onnxruntime's default, one per core).

    Raises:
        FileNotFoundError, ValueError: see :func:`read_onnx_metadata`; ValueError also for a
            device this onnxruntime cannot run on.
        ModuleNotFoundError: onnxruntime or onnx is not installed.
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0) -> None:
        self.metadata = read_onnx_metadata(path)
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1  # one frame at a time: parallel branches gain nothing
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(
                    "device 'cuda': this onnxruntime has no CUDA provider (install onnxruntime-gpu)"
                )
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_name = self.metadata["input_name"]
        self.output_names = self.metadata["heads"].split(",")

    def __call__(self, image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, 1, S, S) float32 images (numpy or a CPU torch tensor) -> segmentation logits,
        centre heatmap and size map as float32 numpy arrays."""
        if hasattr(image, "numpy"):  # a torch tensor from the tracker's preprocessing
            image = image.detach().cpu().numpy()
        feed = {self.input_name: np.ascontiguousarray(image, dtype=np.float32)}
        segmentation, heatmap, size = self.session.run(self.output_names, feed)
        return segmentation, heatmap, size
