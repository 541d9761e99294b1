"""Per-sample key performance indicators kappa in [0, 1] (paper eq. 5), from a training batch.

They drive the prioritization, so they are cheap (a few tensor ops on the batch already in
memory, no gradients) and bounded: 1 = solved, towards 0 = hard.

- Segmentation: kappa_s = IoU of the hard mask (logit > 0, i.e. probability > 0.5) with the true
  mask; 1 when both are empty. (The paper's choice; Table 6 found IoU best.)
- Detection: the paper writes kappa_d = MAE^-1, which is unbounded; we use
  kappa_d = 1 / (1 + MAE / tau), tau = 2 px (the distance of the evaluation's matching radius,
  where kappa_d = 0.5). The MAE matches electrodes both ways:

  - each true electrode to the nearest predicted peak (its localisation error), and
  - each predicted peak to the nearest true electrode (a spurious peak's error),

  every distance capped at ``cap`` (16 px, 4 cells of a stride-4 heatmap; pixels at any stride):
  a missed electrode or a spurious peak costs the cap. The second direction is our addition:
  without it a heatmap that fires everywhere would score a perfect MAE. A sample without
  electrodes and without peaks has MAE 0. Peaks are found as in the post-processing, in torch:
  3x3 max-pool non-maximum suppression, score >= 0.3, at most 128 per image, refined by the same
  log-parabola fit (a plateau may give several peaks here; the post-processing's exact tie rule
  does not matter for a training signal), and mapped to input pixels at the heatmap's stride (4,
  2 or 1): :func:`batch_kpis` reads it from the shapes of the batch's images and of the heatmap,
  so it cannot disagree with them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cathtrack.coordinates import OUTPUT_STRIDE, heatmap_stride, to_input_coordinates

# Floor of a KPI wherever the prioritization divides by it or takes its log (weights <= 20).
KAPPA_MIN = 0.05
PEAK_THRESHOLD = 0.3
MAX_PEAKS = 128
DISTANCE_SCALE = 2.0  # tau, pixels
DISTANCE_CAP = 16.0  # pixels


@torch.no_grad()
def segmentation_kpi(logits: Tensor, mask: Tensor) -> Tensor:
    """Hard IoU per sample.

    Args:
        logits: (B, 1, H, W) segmentation logits.
        mask: (B, 1, H, W) true mask in {0, 1}.

    Returns:
        (B,) float32 IoU in [0, 1]; 1 where prediction and truth are both empty.
    """
    predicted = (logits > 0).flatten(1)
    target = (mask > 0.5).flatten(1)
    intersection = (predicted & target).sum(dim=1)
    union = (predicted | target).sum(dim=1)
    iou = intersection.float() / union.clamp(min=1).float()
    return torch.where(union == 0, 1.0, iou)


@torch.no_grad()
def heatmap_peaks(
    heatmap: Tensor,
    threshold: float = PEAK_THRESHOLD,
    max_peaks: int = MAX_PEAKS,
    stride: int = OUTPUT_STRIDE,
) -> tuple[Tensor, Tensor, Tensor]:
    """Local maxima of a centre heatmap, refined to sub-cell precision.

    Args:
        heatmap: (B, 1, h, w) probabilities.
        threshold: minimum score of a peak.
        max_peaks: K, the most peaks kept per image (highest scores first).
        stride: heatmap stride (4, 2 or 1), to map peaks to input pixels.

    Returns:
        xy (B, K, 2) peak positions x, y in input pixels, scores (B, K) and valid (B, K) bool
        (False for the padding of images with fewer than K peaks).
    """
    batch, _, height, width = heatmap.shape
    is_peak = (heatmap == F.max_pool2d(heatmap, 3, stride=1, padding=1)) & (heatmap >= threshold)
    candidates = torch.where(is_peak, heatmap, -1.0).flatten(1)
    scores, flat = candidates.topk(min(max_peaks, height * width), dim=1)
    valid = scores >= threshold
    offset_x, offset_y = _subcell_offsets(heatmap[:, 0])
    cells = torch.stack([flat % width, flat // width], dim=-1).to(heatmap.dtype)
    offsets = torch.stack(
        [offset_x.flatten(1).gather(1, flat), offset_y.flatten(1).gather(1, flat)], -1
    )
    return to_input_coordinates(cells + offsets, stride), scores, valid


def _subcell_offsets(heatmap: Tensor) -> tuple[Tensor, Tensor]:
    """Vertex offsets in [-0.5, 0.5] of the parabola through the log-values along x and y.

    Exact for a sampled Gaussian; 0 at the border and where the curve is not strictly concave.
    heatmap: (B, h, w) -> two (B, h, w).
    """
    log_values = torch.log(heatmap.clamp(min=1e-12))
    padded = F.pad(log_values[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    offsets = []
    for before, after, axis in (
        (padded[:, 1:-1, :-2], padded[:, 1:-1, 2:], 2),
        (padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], 1),
    ):
        curvature = before - 2 * log_values + after
        offset = torch.where(
            curvature < 0, 0.5 * (before - after) / curvature.clamp(max=-1e-12), 0.0
        ).clamp(-0.5, 0.5)
        size = heatmap.shape[axis]
        position = torch.arange(size, device=heatmap.device)
        interior = (position > 0) & (position < size - 1)
        offsets.append(offset * (interior[None, None, :] if axis == 2 else interior[None, :, None]))
    return offsets[0], offsets[1]


@torch.no_grad()
def detection_kpi(
    heatmap: Tensor,
    centers: Tensor,
    center_mask: Tensor,
    tau: float = DISTANCE_SCALE,
    cap: float = DISTANCE_CAP,
    threshold: float = PEAK_THRESHOLD,
    stride: int = OUTPUT_STRIDE,
) -> Tensor:
    """kappa_d = 1 / (1 + MAE / tau) per sample (see the module docstring).

    Args:
        heatmap: (B, 1, h, w) predicted probabilities.
        centers: (B, N, 2) true electrode centres x, y in input pixels.
        center_mask: (B, N) bool, True for real electrodes.
        tau: distance in pixels at which kappa_d = 0.5.
        cap: distance in pixels charged for a missed electrode or a spurious peak.
        threshold: minimum peak score.
        stride: heatmap stride (4, 2 or 1; :func:`batch_kpis` infers it from the shapes).

    Returns:
        (B,) float32 in [1 / (1 + cap / tau), 1].
    """
    peaks, _, valid = heatmap_peaks(heatmap, threshold, MAX_PEAKS, stride)
    distance = torch.cdist(centers.to(peaks.dtype), peaks)  # (B, N, K)
    infinity = torch.tensor(float("inf"), device=distance.device)
    true_to_peak = torch.where(valid[:, None, :], distance, infinity).amin(dim=2)
    peak_to_true = torch.where(center_mask[:, :, None], distance, infinity).amin(dim=1)
    total = (true_to_peak.clamp(max=cap) * center_mask).sum(dim=1) + (
        peak_to_true.clamp(max=cap) * valid
    ).sum(dim=1)
    count = center_mask.sum(dim=1) + valid.sum(dim=1)
    mae = total / count.clamp(min=1)
    return 1 / (1 + mae / tau)


@torch.no_grad()
def batch_kpis(outputs: tuple[Tensor, Tensor, Tensor], batch: dict) -> dict[str, Tensor]:
    """Both KPIs of a forward pass: {"detection": (B,), "segmentation": (B,)} in [0, 1].

    Computed for every sample; where a task is unavailable the value is meaningless and the
    prioritization ignores it (it reads ``batch["available"]``). The heatmap's stride comes from
    its shape and the batch's image size (:func:`cathtrack.coordinates.heatmap_stride`).
    """
    segmentation, heatmap, _ = outputs
    stride = heatmap_stride(batch["image"].shape, heatmap.shape)
    return {
        "detection": detection_kpi(heatmap, batch["center"], batch["center_mask"], stride=stride),
        "segmentation": segmentation_kpi(segmentation, batch["mask"]),
    }
