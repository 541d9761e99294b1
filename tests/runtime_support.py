"""Shared by test_runtime.py, test_export.py and test_tracker.py: a tiny CathNet whose outputs
have real structure, its exported files, and test frames. Built once per pytest session in the
session's base temporary folder (every module asks for the same files and gets them from there).

Why not the freshly initialised network: its heatmap sits flat at the 0.1 prior (no peaks) and
its mask at 0.5, so parity would compare nothing. Why not a briefly trained one: 60-100 steps
take 15 s on 2 idle cores but minutes when the cores are shared, and still give few peaks.
Instead the three 1x1 output convs get random weights scaled up (the features under them depend
on the image), with biases calibrated on two other synthetic frames so that the top 5 % of
heatmap cells and the top 10 % of mask pixels are positive logits. The result is
deterministic, and every stage of decoding gets real work: 10-25 electrode peaks per frame with
scores in (0.1, 1), masks with branching skeletons, several catheters per frame with 3-6
assigned electrodes (at max_assign_distance 8) that get classified, and centerlines turned
around by their electrodes. Logits are scaled (mask std ~7) so few pixels lie near a threshold,
where the ~1e-6 differences between AOTInductor's kernels and eager torch could flip them.

The same recipe builds tiny models of heatmap stride 2 and 1 (``stride=``; their centre and size
heads sit on the narrow stride-2/1 stages, whose output convs get the same treatment): 15-30
peaks per frame at stride 2, 30-50 at stride 1 (finer cells, more local maxima).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_SIZE = 128
SCORE_THRESHOLD = 0.1
TRAINING_CONFIG_HASH = "tiny-test-config"
# Tracker settings of the parity tests: a generous assignment distance so that catheters get
# several electrodes (classification and orientation run on real groups).
PARITY_SETTINGS = {"score_threshold": SCORE_THRESHOLD, "max_assign_distance": 8.0}


def _name(stride: int) -> str:
    return "tiny" if stride == 4 else f"tiny_s{stride}"


def _build_tiny_model(folder: Path, stride: int = 4) -> Path:
    import torch

    from cathtrack.checkpoint import save_model
    from cathtrack.data.synth import preset, render
    from cathtrack.model import ModelConfig, build_model
    from cathtrack.pipeline import preprocess

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", width=0.25, heatmap_stride=stride)).eval()
    generator = torch.Generator().manual_seed(1)
    heads = {
        "center": (model.center_head.out, 1.0, 0.95),  # (conv, weight std, quantile at logit 0)
        "segmentation": (model.segmentation_head.out, 3.0, 0.90),
        "size": (model.size_head.out, 0.1, None),
    }
    captured = {}
    hooks = [
        conv.register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out))
        for name, (conv, _, _) in heads.items()
    ]
    calibration = np.stack(
        [
            preprocess(render(preset("clinical", size=TINY_SIZE), seed=seed).image, TINY_SIZE)
            for seed in (200, 201)
        ]
    )
    with torch.no_grad():
        for conv, std, _ in heads.values():
            conv.weight.copy_(std * torch.randn(conv.weight.shape, generator=generator))
            conv.bias.zero_()
        model(torch.from_numpy(calibration)[:, None])
        for name, (conv, _, quantile) in heads.items():
            if quantile is None:
                conv.bias.fill_(3.0)  # electrode boxes of ~3 px
            else:
                conv.bias.fill_(-torch.quantile(captured[name].flatten(), quantile).item())
    for hook in hooks:
        hook.remove()
    training = {"config_hash": TRAINING_CONFIG_HASH}
    path = folder / f"{_name(stride)}.safetensors"
    return save_model(path, model, input_size=TINY_SIZE, training=training)


def session_folder(factory: pytest.TempPathFactory) -> Path:
    folder = factory.getbasetemp() / "runtime-models"
    folder.mkdir(exist_ok=True)
    return folder


def tiny_checkpoint(factory: pytest.TempPathFactory, stride: int = 4) -> Path:
    """The tiny model's ``.safetensors`` (with its ``.json``), of heatmap stride 4, 2 or 1."""
    weights = session_folder(factory) / f"{_name(stride)}.safetensors"
    if not weights.is_file():
        _build_tiny_model(weights.parent, stride)
    return weights


def tiny_export(factory: pytest.TempPathFactory, model_format: str, stride: int = 4) -> Path:
    """The tiny model exported to ``.pt2`` (AOTInductor, ~30 s) or ``.ts``."""
    from cathtrack.export import export_model

    checkpoint = tiny_checkpoint(factory, stride)
    path = checkpoint.with_suffix(f".{model_format}")
    if not path.is_file():
        export_model(checkpoint, path, model_format)
    return path


def sample_frames() -> list[np.ndarray]:
    """Synthetic frames the tiny model has not seen, in the dtypes and shapes the engine takes:
    uint16 12-bit at the model size, uint8 larger and non-square (shrunk by the resize),
    float32 smaller (enlarged) with a few NaN pixels."""
    from cathtrack.data.synth import preset, render

    big = render(preset("clinical", size=192), seed=101).image
    native = render(preset("clinical", size=TINY_SIZE), seed=102).image
    small = render(preset("clinical", size=96), seed=103).image.copy()
    small[5, 7] = small[50, 60] = np.nan
    return [
        np.round(native * 4095).astype(np.uint16),
        np.round(big[:, 16:176] * 255).astype(np.uint8),
        small.astype(np.float32),
    ]
