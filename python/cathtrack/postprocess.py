"""Post-processing of the network outputs: electrode peaks, mask thinning, centerlines, and the
electrode-pattern matcher that names a catheter's type.

Every function here runs in the native core (``cathtrack._native``, C++17) with the GIL released.
Inputs are checked and converted here, so a wrong dtype, rank, empty array or non-contiguous view
gives a ``TypeError``/``ValueError`` (or is converted, as documented per argument), never a crash.

Coordinates are (x, y) = (column, row) in pixels, with pixel centres at integer coordinates.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from cathtrack import _native
from cathtrack.catheters import CATALOGUE, CATHETER_TYPES, UNKNOWN_TYPE
from cathtrack.device import check_device_name
from cathtrack.settings import DecodeSettings

if TYPE_CHECKING:
    import torch

__all__ = [
    "find_peaks",
    "thin",
    "trace_centerlines",
    "assign_electrodes",
    "classify_catheter",
    "spacing_templates",
]


def _is_torch_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "device")


def _as_array(value: Any, name: str) -> np.ndarray:
    if _is_torch_tensor(value):
        if value.device.type != "cpu":
            raise ValueError(
                f"{name} is on {value.device}; pass device='cuda' or move it to the CPU"
            )
        value = value.detach().numpy()
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - anything numpy cannot read is a type error here
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from error
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a real numeric or boolean array, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    return array


def _as_image(value: Any, name: str) -> np.ndarray:
    array = _as_array(value, name)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (height, width), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    return array


def _as_heatmap(value: Any) -> np.ndarray:
    return np.ascontiguousarray(_as_image(value, "heatmap"), dtype=np.float32)


def _as_binary(value: Any, name: str) -> np.ndarray:
    """Nonzero (and NaN) pixels are foreground; returns contiguous uint8 0/1."""
    array = _as_image(value, name)
    return np.ascontiguousarray(array != 0, dtype=np.uint8)


def _as_points(value: Any, name: str) -> np.ndarray:
    array = _as_array(value, name)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {array.shape}")
    points = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return points


def _check_device(device: str) -> str:
    """``device`` when valid and, for CUDA, when this build has the post-processing kernels."""
    if check_device_name(device) == "cuda" and not hasattr(_native, "thin_cuda"):
        raise RuntimeError(
            "this build of cathtrack has no CUDA kernels (nvcc was not found at build time); "
            "see cathtrack.build_info()"
        )
    return device


def find_peaks(
    heatmap: np.ndarray | torch.Tensor,
    threshold: float = 0.3,
    max_peaks: int = 128,
    *,
    device: str = "cpu",
    return_index: bool = False,
):
    """Electrode centres: local maxima of a heatmap.

    A pixel is a peak when its value is >= ``threshold`` and it survives 3x3 non-maximum
    suppression with this tie rule: it must be strictly greater than the neighbours before it in
    raster order (the row above, and its left neighbour) and greater or equal to the others, so a
    plateau yields exactly one peak, its first pixel in raster order. NaN never is a peak and never
    suppresses. Each peak is refined to sub-pixel precision by fitting a parabola to the logarithm
    of the values along x and along y (exact for Gaussian blobs; raw values when one is <= 0),
    offset clamped to +-0.5 px, none on an axis at the image border.

    Args:
        heatmap: (H, W) real array, converted to float32 (numpy or CPU tensor; with
            ``device="cuda"`` a float32 CUDA tensor).
        threshold: minimum score.
        max_peaks: keep at most this many, highest score first.
        device: "cpu" (native core) or "cuda" (CUDA kernels; identical bits).
        return_index: also return the flat index row*W+col of each integer peak position.

    Returns:
        ``(xy, scores)`` or ``(xy, scores, index)``: xy (N, 2) float32 (x, y) pixels, scores (N,)
        float32, index (N,) int32, sorted by score descending then raster index. numpy arrays on
        the CPU; tensors on the GPU for ``device="cuda"``.
    """
    if _check_device(device) == "cuda":
        xy, scores, index = _find_peaks_cuda(heatmap, float(threshold), int(max_peaks))
    else:
        xy, scores, index = _native.find_peaks(
            _as_heatmap(heatmap), float(threshold), int(max_peaks)
        )
    return (xy, scores, index) if return_index else (xy, scores)


def thin(mask: np.ndarray | torch.Tensor, *, device: str = "cpu"):
    """Guo-Hall thinning of a binary mask to a one-pixel-wide, 8-connected skeleton.

    Equals ``skimage.morphology.thin`` pixel for pixel: same lookup tables, same sub-iteration
    order, pixels outside the image count as background.

    Args:
        mask: (H, W) array; nonzero (or NaN) is foreground. With ``device="cuda"`` a uint8 or bool
            CUDA tensor.
        device: "cpu" or "cuda" (identical result).

    Returns:
        (H, W) uint8 skeleton with values 0/1 (numpy, or a CUDA tensor for ``device="cuda"``).
    """
    if _check_device(device) == "cuda":
        return _thin_cuda(mask)
    skeleton, _iterations = _native.thin(_as_binary(mask, "mask"))
    return skeleton


def trace_centerlines(skeleton: np.ndarray, min_length: float = 10.0) -> list[np.ndarray]:
    """Ordered centerlines, one per device, also where devices cross (docs/postprocess.md).

    The skeleton is read as a graph of junction clusters and branches; spurs shorter than 6 px are
    dropped, and at each junction the arms are paired by direction (most nearly straight through,
    bending <= 60 degrees), so an X crossing gives two polylines, a T the through path and a side
    branch, and a closed loop one polyline all the way round. A polyline starts at its end farthest
    from the image border (catheters enter from an edge, so that end is the distal tip); equal
    distances put the end with the smaller raster index first. The pixel path is smoothed by a
    5-pixel moving average with fixed end points, which removes the staircase of 8-connected
    steps (up to 8 % too long) so arc lengths along the polyline are true lengths.

    Args:
        skeleton: (H, W) one-pixel-wide skeleton (e.g. from :func:`thin`); nonzero = on.
        min_length: shortest centerline kept, in pixels of arc length.

    Returns:
        list of (M, 2) float32 (x, y) polylines of traced length >= min_length, distal ->
        proximal, in raster order of their first point (ties: of their last).
    """
    return list(_native.trace_centerlines(_as_binary(skeleton, "skeleton"), float(min_length)))


def assign_electrodes(
    centerlines: list[np.ndarray], xy: np.ndarray, max_distance: float = 4.0
) -> list[np.ndarray]:
    """Assigns electrodes to their nearest centerline and orders them along it.

    Each electrode is projected on every centerline segment; it belongs to the nearest centerline
    when that distance is <= ``max_distance`` pixels (ties to the lower centerline index), else to
    none.

    Args:
        centerlines: list of (M, 2) polylines ordered distal -> proximal.
        xy: (N, 2) electrode centres in pixels.
        max_distance: largest electrode-to-centerline distance, pixels.

    Returns:
        one int64 array per centerline: indices into ``xy`` ordered by arc length from the
        centerline's first point (distal first).
    """
    lines = [_as_points(line, f"centerlines[{i}]") for i, line in enumerate(centerlines)]
    ordered, _labels, _arc, _distance = _native.assign_electrodes(
        lines, _as_points(xy, "xy"), float(max_distance)
    )
    return list(ordered)


@lru_cache(maxsize=1)
def spacing_templates() -> tuple[tuple[int, tuple[float, ...]], ...]:
    """(index into CATHETER_TYPES, centre spacings in mm) per catalogue variant with at least two
    electrodes: the templates of :func:`classify_catheter`, also handed to the native engine.
    Variants with fewer electrodes have no spacing to match, so the matcher never predicts them."""
    return tuple(
        (CATHETER_TYPES.index(variant.type), variant.centre_spacing_mm)
        for variant in CATALOGUE
        if variant.n_electrodes >= 2
    )


def classify_catheter(
    ordered_xy: np.ndarray, tolerance: float = DecodeSettings.spacing_tolerance
) -> tuple[str, float]:
    """Names a catheter from its electrode spacing pattern.

    The distances between consecutive electrodes (ordered distal -> proximal) are matched against
    the centre-to-centre spacings of every variant in :data:`cathtrack.catheters.CATALOGUE`, free of
    scale (pixels vs millimetres, magnification): for each window of the template, the observed
    spacings g are compared with the template w after the least-squares scale s = g.w / w.w; the
    relative residual e = |g - s w| / |g| gives a shape score exp(-(e/tolerance)^2 / 2), multiplied
    by the fraction of the template's electrodes observed.

    Args:
        ordered_xy: (N, 2) electrode centres ordered from the distal tip.
        tolerance: relative spacing error that lowers the shape score to exp(-1/2).

    Returns:
        ``(type, score)``: a name of :data:`cathtrack.catheters.CATHETER_TYPES` and a score in
        [0, 1], or ``("unknown", 0.0)`` for fewer than two electrodes.
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    type_index, _variant, score = _native.classify_spacing(
        _as_points(ordered_xy, "ordered_xy"), list(spacing_templates()), float(tolerance)
    )
    if type_index < 0:
        return UNKNOWN_TYPE, 0.0
    return CATHETER_TYPES[type_index], float(score)


# ---- CUDA: torch tensors in, raw device pointers and torch's current stream to the kernels ------


def _cuda_tensor(value: Any, name: str, dtypes: tuple) -> torch.Tensor:
    if not _is_torch_tensor(value) or value.device.type != "cuda":
        raise TypeError(f"{name} must be a CUDA torch tensor for device='cuda'")
    if value.dim() != 2:
        raise ValueError(f"{name} must be 2-D (height, width), got shape {tuple(value.shape)}")
    if value.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(value.shape)})")
    if value.dtype not in dtypes:
        raise TypeError(
            f"{name} must have dtype {' or '.join(map(str, dtypes))}, got {value.dtype}"
        )
    return value.contiguous()


def _find_peaks_cuda(heatmap, threshold: float, max_peaks: int):
    import torch

    heat = _cuda_tensor(heatmap, "heatmap", (torch.float32,))
    height, width = heat.shape
    capacity = max(max_peaks, 0)
    workspace = torch.empty(
        _native.find_peaks_cuda_workspace_bytes(height, width),
        dtype=torch.uint8,
        device=heat.device,
    )
    # One peak is 16 bytes {float x, float y, float score, int32 index}.
    peaks = torch.empty((max(capacity, 1), 4), dtype=torch.float32, device=heat.device)
    count = torch.zeros(1, dtype=torch.int32, device=heat.device)
    stream = torch.cuda.current_stream(heat.device).cuda_stream
    _native.find_peaks_cuda(
        heat.data_ptr(), height, width, threshold, capacity, workspace.data_ptr(),
        workspace.numel(), peaks.data_ptr(), count.data_ptr(), stream,
    )  # fmt: skip
    n = int(count.item())
    peaks = peaks[:n]
    return (
        peaks[:, :2].contiguous(),
        peaks[:, 2].contiguous(),
        peaks.view(torch.int32)[:, 3].contiguous(),
    )


def _thin_cuda(mask):
    import torch

    binary = _cuda_tensor(mask, "mask", (torch.uint8, torch.bool)).to(torch.uint8)
    height, width = binary.shape
    out = torch.empty_like(binary)
    workspace = torch.empty(
        _native.thin_cuda_workspace_bytes(height, width), dtype=torch.uint8, device=binary.device
    )
    stream = torch.cuda.current_stream(binary.device).cuda_stream
    _native.thin_cuda(
        binary.data_ptr(), out.data_ptr(), height, width, workspace.data_ptr(), workspace.numel(),
        stream,
    )  # fmt: skip
    return out
