"""Per-sample task losses (paper eqs. 7 and 8) and the paper's masked batch reduction (eq. 1).

Every loss returns one value per sample, shape (B,), so that the prioritization can weight or
drop samples before reducing (:func:`weighted_batch_mean`).

- Detection (eq. 7): CenterNet's penalty-reduced focal loss on the centre heatmap (alpha = 2,
  beta = 4, normalised by the sample's electrode count, at least 1) + lambda * L1 on the box size
  at the electrode centres (lambda = 1 in the paper). Both work on the heatmap's own grid, at
  any stride (4, 2 or 1): the batch must be collated at the model's stride
  (``collate_batch(..., stride=model.output_stride)``); a target of another shape is refused.
- Segmentation (eq. 8): binary cross-entropy + BASNet's soft IoU loss 1 - sum(p m) / sum(p + m -
  p m). The IoU is smoothed by 1 (pixel) in numerator and denominator so that an empty mask
  predicted empty costs 0 instead of 0/0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# CenterNet clamps sigmoid outputs to this distance from 0 and 1 before taking logarithms.
HEATMAP_EPS = 1e-4
IOU_SMOOTH = 1.0


def focal_loss(heatmap: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet focal loss per sample.

    loss_i = -1 / max(1, P_i) * [ sum_{y=1} (1 - p)^alpha log p
                                  + sum_{y<1} (1 - y)^beta p^alpha log(1 - p) ]
    with P_i the number of positive cells (y == 1) of sample i.

    Args:
        heatmap: (B, 1, h, w) predicted probabilities (clamped to [1e-4, 1 - 1e-4]).
        target: (B, 1, h, w) Gaussian-splatted target in [0, 1], exactly 1 at centres.
        alpha: focusing exponent.
        beta: penalty reduction exponent around centres.

    Returns:
        (B,) float32 losses.
    """
    p = heatmap.clamp(HEATMAP_EPS, 1 - HEATMAP_EPS)
    positive = target.eq(1).to(p.dtype)
    positive_term = torch.log(p) * (1 - p) ** alpha * positive
    negative_term = torch.log(1 - p) * p**alpha * (1 - target) ** beta * (1 - positive)
    num_positive = positive.flatten(1).sum(dim=1).clamp(min=1)
    return -(positive_term + negative_term).flatten(1).sum(dim=1) / num_positive


def size_l1_loss(size: Tensor, index: Tensor, center_mask: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error of the box size at the electrode centres, per sample.

    Args:
        size: (B, 2, h, w) predicted w, h in input pixels.
        index: (B, N) int64 flat index row * w + column of each centre cell.
        center_mask: (B, N) bool, True for real electrodes (False for padding).
        target: (B, N, 2) true w, h in input pixels.

    Returns:
        (B,) mean over the sample's electrodes and over (w, h) of |predicted - true|; 0 for a
        sample without electrodes.
    """
    batch, channels = size.shape[:2]
    predicted = size.reshape(batch, channels, -1).gather(
        2, index[:, None, :].expand(-1, channels, -1)
    )  # (B, 2, N)
    mask = center_mask[:, None, :].to(size.dtype)
    error = ((predicted - target.transpose(1, 2)).abs() * mask).sum(dim=(1, 2))
    return error / (channels * center_mask.sum(dim=1).clamp(min=1))


def detection_loss(
    heatmap: Tensor, size: Tensor, batch: dict, size_weight: float = 1.0
) -> tuple[Tensor, dict[str, Tensor]]:
    """Paper eq. 7: focal loss + ``size_weight`` * size L1, per sample.

    Args:
        heatmap: (B, 1, h, w) predicted probabilities.
        size: (B, 2, h, w) predicted box w, h in input pixels.
        batch: a batch from :func:`cathtrack.train.targets.collate_batch` (``heatmap``, ``index``,
            ``center_mask``, ``size``).
        size_weight: lambda (1 in the paper).

    Returns:
        (B,) total and the parts {"focal": (B,), "size": (B,)} for logging.

    Raises:
        ValueError: the target heatmap is not on the predicted heatmap's grid (a batch
            collated at another stride than the model's).
    """
    if batch["heatmap"].shape != heatmap.shape or size.shape[-2:] != heatmap.shape[-2:]:
        raise ValueError(
            f"the heatmap target has shape {tuple(batch['heatmap'].shape)} but the network's "
            f"heatmap {tuple(heatmap.shape)} and size map {tuple(size.shape)}: collate the batch "
            "at the model's stride (collate_batch(..., stride=model.output_stride))"
        )
    focal = focal_loss(heatmap, batch["heatmap"])
    size_error = size_l1_loss(size, batch["index"], batch["center_mask"], batch["size"])
    return focal + size_weight * size_error, {"focal": focal, "size": size_error}


def segmentation_loss(logits: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Paper eq. 8: per-pixel BCE (mean per sample) + BASNet soft IoU loss, per sample.

    Args:
        logits: (B, 1, H, W) segmentation logits.
        mask: (B, 1, H, W) float target in {0, 1}.

    Returns:
        (B,) total and the parts {"bce": (B,), "iou": (B,)} for logging.
    """
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none").flatten(1).mean(dim=1)
    probability = torch.sigmoid(logits).flatten(1)
    target = mask.flatten(1)
    intersection = (probability * target).sum(dim=1)
    union = (probability + target).sum(dim=1) - intersection
    iou = 1 - (intersection + IOU_SMOOTH) / (union + IOU_SMOOTH)
    return bce + iou, {"bce": bce, "iou": iou}


def weighted_batch_mean(losses: Tensor, weights: Tensor) -> Tensor:
    """Paper eq. 1: (1 / B) sum_i w_i L(i), the mean over the whole batch (not over kept samples).

    Dividing by the batch size B, as the paper writes, means dropped or unlabelled samples lower
    the task loss instead of re-scaling the kept ones.

    Args:
        losses: (B,) per-sample losses.
        weights: (B,) per-sample weights (the paper's delta_{t,i}, 0/1, or soft weights).

    Returns:
        scalar.
    """
    if losses.shape != weights.shape or losses.dim() != 1:
        raise ValueError(
            f"need two (B,) tensors, got {tuple(losses.shape)}, {tuple(weights.shape)}"
        )
    # where(), not a product: a sample whose task is unlabelled must not leak a NaN into the sum.
    return torch.where(weights != 0, losses * weights, 0.0).sum() / losses.shape[0]


def task_losses(
    outputs: tuple[Tensor, Tensor, Tensor], batch: dict, size_weight: float = 1.0
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Both task losses of a forward pass, per sample.

    Args:
        outputs: CathNet's (segmentation logits, heatmap, size).
        batch: a batch from :func:`cathtrack.train.targets.collate_batch`.
        size_weight: lambda of eq. 7.

    Returns:
        {"detection": (B,), "segmentation": (B,)} and their parts {"focal", "size", "bce", "iou"}.
    """
    segmentation, heatmap, size = outputs
    detection, detection_parts = detection_loss(heatmap, size, batch, size_weight)
    segmentation_total, segmentation_parts = segmentation_loss(segmentation, batch["mask"])
    losses = {"detection": detection, "segmentation": segmentation_total}
    return losses, {**detection_parts, **segmentation_parts}
