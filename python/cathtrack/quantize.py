"""int8 post-training static quantisation of CathNet for the CPU (``cathtrack export --int8``).

The flow is torchao's PT2E (torch 2.13 no longer ships ``torch.ao.quantization.quantize_pt2e``;
torchao is where it went):

1. ``torch.export.export`` of the float32 network (batch 1, the model's input size);
2. ``prepare_pt2e`` with ``X86InductorQuantizer``: int8 weights per output channel
   (symmetric), uint8 activations per tensor (affine, histogram observers), for the convolutions
   and what follows them (ReLU, the residual adds, max-pool);
3. calibration: forward passes over frames preprocessed as the tracker does (synthetic
   ``clinical`` frames, or the user's own);
4. ``convert_pt2e``: quantize/dequantize nodes around float ops;
5. the caller compiles it with AOTInductor and freezing (:mod:`cathtrack.export`), where
   torchao's Inductor passes fuse each dequantize-conv-quantize into a oneDNN int8 convolution
   with its ReLU or add. The ``.pt2`` takes and gives float32 like any other, so the native
   engine runs it unchanged.

Kept in float32 (:data:`FLOAT_MODULES`): the last 1x1 convolution of each head. Their outputs are
the segmentation logits, the heatmap logits and the sizes themselves; a per-tensor uint8 grid
over the logits' range (about +-200 for the mask) is too coarse for the 0.5 threshold and the
sub-pixel peak fit, and the three convs cost 0.02 % of the network's FLOPs. The attention gates,
the interpolations and the sigmoid stay float as the quantiser leaves them. (On a CPU with native
bfloat16 these could run in bfloat16; this module keeps float32, which every x86 CPU computes.)

On a CPU without VNNI, oneDNN's int8 convolution adds u8 x s8 products pairwise in int16
(``vpmaddubsw``), which saturates for large activations; the activations then use 7 bits
(``reduce_range``), as the quantiser recommends for such CPUs. A ``.pt2`` is compiled for the
exporting machine anyway (``cpu_capability``), so the choice follows the machine.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

SCHEME = "int8-static-pt2e-x86"  # metadata "quantization"
FLOAT_MODULES = ("segmentation_head.out", "center_head.out", "size_head.out")
DEFAULT_FRAMES = 32
# Synthetic calibration frames: those `cathtrack synth --preset clinical --seed 2` writes (dataset
# seed 0 trained the shipped models, 1 validated them, 1000 is the held-out evaluation set).
CALIBRATION_SEED = 2


def _import_torchao():
    # torchao's import logs that its CUDA kernels do not load (irrelevant on the CPU) and torch
    # warns about a registration torchao makes: neither concerns the user.
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.quantization.pt2e import quantize_pt2e
            from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "int8 export needs torchao: pip install 'cathtrack[int8]'"
        ) from None
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    return quantize_pt2e, x86_inductor_quantizer


def reduced_range() -> bool:
    """Whether activations use 7 bits: on CPUs without VNNI (see the module docstring)."""
    return not torch.cpu._is_vnni_supported()


def calibration_images(
    size: int, source: str | Path | None = None, count: int | None = None
) -> tuple[np.ndarray, str]:
    """Calibration frames as the network sees them, and a description for the metadata.

    Args:
        size: the model's input side.
        source: frames to read (images, TIFF, video, DICOM, or a folder of them: anything
            :func:`cathtrack.io.iter_inputs` reads), the first ``count`` of them; None renders
            synthetic ``clinical`` frames (:data:`CALIBRATION_SEED`).
        count: how many frames (None: :data:`DEFAULT_FRAMES`).

    Returns:
        ((N, 1, size, size) float32 in [0, 1], description).

    Raises:
        ValueError: ``count`` < 1, or ``source`` has no readable frame.
        FileNotFoundError: ``source`` does not exist.
    """
    from cathtrack.pipeline import preprocess

    count = DEFAULT_FRAMES if count is None else int(count)
    if count < 1:
        raise ValueError(f"calibration needs at least 1 frame, got {count}")
    if source is None:
        from cathtrack.cli.synth import derive_seed
        from cathtrack.data.synth import preset, render

        config = preset("clinical", size=size)
        frames = [render(config, derive_seed(CALIBRATION_SEED, 0, i)).image for i in range(count)]
        description = f"{count} synthetic clinical frames (dataset seed {CALIBRATION_SEED})"
    else:
        from cathtrack.io import ReadError, iter_inputs

        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"{source}: calibration frames not found")
        frames = []
        for item in iter_inputs(source):
            if isinstance(item, ReadError):
                raise ValueError(f"calibration: {item}")
            frames.append(item.image)
            if len(frames) == count:
                break
        if not frames:
            raise ValueError(f"{source}: no frames to calibrate on")
        description = f"{len(frames)} frames of {source.name}"
    images = np.stack([preprocess(frame, size) for frame in frames])[:, None]
    return images.astype(np.float32), description


def quantization_metadata(calibration: str | None) -> dict[str, str]:
    """The metadata keys of an int8 model file (``calibration`` None: before calibrating, the
    facts that name it in the export cache)."""
    metadata = {
        "quantization": SCHEME,
        "quantization_activations": "uint8 per tensor" + (", 7-bit range" * reduced_range()),
        "quantization_float_modules": ",".join(FLOAT_MODULES),
    }
    if calibration is not None:
        metadata["quantization_calibration"] = calibration
    return metadata


def quantize_int8(model: torch.nn.Module, images: np.ndarray) -> torch.fx.GraphModule:
    """The int8 network of a float32 ``model`` (eval mode, on the CPU), calibrated on
    ``images`` ((N, 1, S, S) float32, one forward pass each); batch 1, input (1, 1, S, S).

    Raises:
        ModuleNotFoundError: torchao is not installed.
    """
    quantize_pt2e, x86 = _import_torchao()
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(
        x86.get_default_x86_inductor_quantization_config(reduce_range=reduced_range())
    )
    for name in FLOAT_MODULES:
        quantizer.set_module_name_qconfig(name, None)
    batches = torch.from_numpy(images).float().split(1)
    with torch.no_grad():
        program = torch.export.export(model.eval(), (batches[0],), strict=True)
        prepared = quantize_pt2e.prepare_pt2e(program.module(), quantizer)
        for batch in batches:
            prepared(batch)
        return quantize_pt2e.convert_pt2e(prepared)
