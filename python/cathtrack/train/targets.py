"""Training targets: a list of :class:`~cathtrack.data.sample.Sample` -> one batch of tensors.

Heatmap coordinates. The centre heatmap has the model's stride s, 4 (the paper's), 2 or 1
(:data:`cathtrack.coordinates.HEATMAP_STRIDES`), and follows the same pixel-centre convention as
the rest of the project (:mod:`cathtrack.coordinates`: pixel centres at integer coordinates, as
in ``prepare_sample`` and bilinear resizing with ``align_corners=False``): heatmap cell u covers
input pixels [s u - 0.5, s u + s - 0.5), so input x maps to u = (x + 0.5) / s - 0.5 and back with
x = s (u + 0.5) - 0.5. Every function here takes the stride (default 4, the stride-4 targets of
before, bit for bit).

Heatmap targets (CenterNet, Zhou et al. 2019). Each electrode splats a Gaussian exp(-d^2 / 2
sigma^2) centred on its *sub-pixel* centre (not on the cell): the post-processing refines peaks
with a log-parabola fit, which recovers the sub-cell offset exactly from a sampled Gaussian,
so no offset head is needed. The Gaussian is scaled to be exactly 1 at the cell nearest the
centre (the focal loss's positive); scaling keeps the log-parabola fit exact. Overlapping
Gaussians combine by maximum.

sigma at any stride: CenterNet's radius rule in the heatmap's own cells. r = gaussian_radius(box
h, w in cells = pixels / s, min_overlap 0.7), truncated to an integer and raised to at least 1
cell (our electrodes are 2-4 px, under one stride-4 cell, where CenterNet's rule would give r = 0:
a single positive cell with no soft negatives around it), sigma = (2r + 1) / 6 cells, and the
Gaussian is cut to the (2r + 1)^2 window around the centre cell. This is the stride-4 rule
of before, read in cells of the model's stride. At 256 x 256 the electrodes of the ``clinical``
preset get r = 1 at every stride (all but 1 of 4356 in 200 frames, a 9 px box with r = 2 at
stride 1), so sigma = 0.5 cell = s / 2 pixels (2, 1, 0.5 px) and the neighbours of a centre
cell sit at exp(-2) = 0.14 of it. Why in cells and not a fixed sigma in pixels (2 px, the
stride-4 value):

- Two electrodes are two peaks of the target exactly when their centre cells are not
  8-neighbours: both cells are exactly 1, every other cell is below 1, and the 3x3 non-maximum
  suppression keeps one of two equal neighbours. sigma does not enter. So at stride s two
  electrodes d pixels apart are always two peaks for d >= 2 sqrt(2) s (2 s along a row or a
  column), sometimes for s <= d < 2 sqrt(2) s (depending on their sub-pixel position and
  direction) and never for d < s: at stride 1 electrodes 3 px apart always stay two peaks, and
  2 px apart along a row or column; at stride 2 from 5.7 px (4 px along an axis); at stride 4
  from 11.3 px (8 px along an axis). A minimum separable distance below one cell would need a
  finer stride, not another sigma.
- What sigma decides is whether a network can reproduce the target: a smooth output looks
  more like the *sum* of the two Gaussians, which has two maxima only while d > 2 sigma. Summed,
  sampled at stride 1 and suppressed 3x3, random pairs 3 px apart gave two peaks every time at
  sigma = 0.5 and 1 px, 7 % of the time at sigma = 2 px. sigma = s / 2 puts that limit, d > s,
  at the cell limit above.
- The log-parabola refinement of a peak reads its two neighbours along each axis, always inside
  the window. For electrodes >= 2 sqrt(2) s apart the other Gaussian barely enters there: the
  refined centres of random pairs were within 0.012 px of the truth at stride 1 (0.003 px at
  3 px apart), 0.03 px at stride 2 and 0.06 px at stride 4.
- At stride 4 it is today's rule, so today's targets come out bit for bit.

Size targets: the electrode box (w, h) in input pixels, supervised at the centre cell through
a flat index into the (H/s) * (W/s) map, CenterNet's ``ind`` / ``reg_mask`` layout, padded to the
largest electrode count in the batch.

Availability: a task whose labels are missing (``Sample.available``, the paper's delta) gets an
all-zero target and availability 0; losses are computed for it but weighted by 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from cathtrack.coordinates import HEATMAP_STRIDES, OUTPUT_STRIDE, to_heatmap_coordinates
from cathtrack.data.sample import TASKS, Sample
from cathtrack.model.net import INPUT_MULTIPLE

MIN_RADIUS = 1  # heatmap cells


def gaussian_radius(height: Tensor, width: Tensor, min_overlap: float = 0.7) -> Tensor:
    """CenterNet's radius rule: the largest corner shift keeping IoU >= ``min_overlap``.

    The minimum of the three cases of CornerNet's ``gaussian_radius`` (both corners inside, both
    outside, one of each), evaluated on tensors.

    Args:
        height: (N,) box heights, any unit (the radius comes out in the same unit).
        width: (N,) box widths.
        min_overlap: IoU the shifted box must keep with the true box.

    Returns:
        (N,) float radii (not yet truncated).
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_heatmap(
    centers: Tensor, box_sizes: Tensor, height: int, width: int, stride: int = OUTPUT_STRIDE
) -> tuple[Tensor, Tensor, Tensor]:
    """Gaussian-splatted centre heatmap of one image (see the module docstring).

    Args:
        centers: (N, 2) float32 electrode centres x, y in input pixels.
        box_sizes: (N, 2) float32 electrode box w, h in input pixels.
        height: heatmap height (input height / stride).
        width: heatmap width.
        stride: the heatmap's stride s (4, 2 or 1): sigma and the window follow the box in
            cells of s pixels.

    Returns:
        heatmap (height, width) float32 in [0, 1] with 1 at every centre cell inside the map,
        the (N, 2) int64 centre cells (column, row) and an (N,) bool mask of the cells inside
        the map (electrodes pushed off the frame by augmentation cannot be supervised).
    """
    uv = to_heatmap_coordinates(centers, stride)
    cells = torch.round(uv).long()
    inside = (
        (cells[:, 0] >= 0) & (cells[:, 0] < width) & (cells[:, 1] >= 0) & (cells[:, 1] < height)
    )
    heatmap = torch.zeros(height, width, dtype=uv.dtype)
    if centers.shape[0] == 0:
        return heatmap, cells, inside
    radius = gaussian_radius(box_sizes[:, 1] / stride, box_sizes[:, 0] / stride)
    radius = torch.clamp(torch.floor(radius), min=MIN_RADIUS)
    sigma = (2 * radius + 1) / 6
    # Only the (2r + 1)^2 window of each electrode is evaluated (N x window cells, not N x the
    # whole map: a stride-1 map has 16 times the cells of a stride-4 one). The values are the
    # same float operations on the same numbers as a dense evaluation, so bit for bit the same.
    reach = int(radius.max())
    steps = torch.arange(-reach, reach + 1)
    offset_y, offset_x = (g.reshape(-1) for g in torch.meshgrid(steps, steps, indexing="ij"))
    columns = cells[:, 0, None] + offset_x[None]  # (N, (2 reach + 1)^2)
    rows = cells[:, 1, None] + offset_y[None]
    dx = columns.to(torch.float32) - uv[:, 0, None]
    dy = rows.to(torch.float32) - uv[:, 1, None]
    # Divided by its value at the centre cell: that cell becomes exactly 1 (no other cell is
    # nearer the true centre, so none exceeds 1) and the log-parabola refinement stays exact.
    center_offset = ((cells.to(uv.dtype) - uv) ** 2).sum(dim=1)
    gaussians = torch.exp(-(dx**2 + dy**2 - center_offset[:, None]) / (2 * sigma[:, None] ** 2))
    keep = (
        (offset_x.abs()[None] <= radius[:, None])
        & (offset_y.abs()[None] <= radius[:, None])
        & (columns >= 0)
        & (columns < width)
        & (rows >= 0)
        & (rows < height)
    )
    flat = (rows * width + columns)[keep]
    heatmap = heatmap.flatten().scatter_reduce(0, flat, gaussians[keep], "amax")
    heatmap = heatmap.reshape(height, width)
    heatmap[cells[inside, 1], cells[inside, 0]] = 1.0  # exact 1 despite exp() rounding
    return heatmap, cells, inside


def collate_batch(
    samples: Sequence[Sample],
    sample_ids: Sequence[int] | None = None,
    stride: int = OUTPUT_STRIDE,
) -> dict:
    """Stack Samples of one common size into the tensors the losses and KPIs read.

    Args:
        samples: B Samples, images (H, W) float32 in [0, 1], H and W multiples of 32.
        sample_ids: B dataset indices (the key of the prioritization's per-sample memory);
            None gives -1 for every sample (only for strategies without a memory).
        stride: heatmap stride s of the model being trained (``CathNet.output_stride``; 4, 2
            or 1): the heatmap and the size targets are built on its (H/s, W/s) grid.

    Returns:
        dict of tensors, N = the largest electrode count in the batch (at least 1):

        - ``image`` (B, 1, H, W) float32 in [0, 1]
        - ``mask`` (B, 1, H, W) float32 in {0, 1} (zeros where segmentation is unavailable)
        - ``heatmap`` (B, 1, H/s, W/s) float32 in [0, 1]
        - ``center`` (B, N, 2) float32 electrode centres x, y in input pixels
        - ``size`` (B, N, 2) float32 electrode box w, h in input pixels
        - ``index`` (B, N) int64 flat index row * (W/s) + column of each centre cell
        - ``center_mask`` (B, N) bool, True for real (not padding) electrodes
        - ``available`` dict task -> (B,) float32 in {0, 1} (the paper's delta)
        - ``sample_id`` (B,) int64
    """
    if len(samples) == 0:
        raise ValueError("cannot collate an empty batch")
    if stride not in HEATMAP_STRIDES:
        raise ValueError(f"heatmap stride {stride} is not one of {HEATMAP_STRIDES}")
    height, width = samples[0].image.shape
    if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise ValueError(f"image size {height}x{width} is not a multiple of {INPUT_MULTIPLE}")
    map_height, map_width = height // stride, width // stride
    images, masks, heatmaps, per_sample = [], [], [], []
    for sample in samples:
        if sample.image.shape != (height, width):
            raise ValueError(
                f"{sample.name}: image {sample.image.shape} differs from the batch's "
                f"{(height, width)}; resize samples to one size first"
            )
        images.append(torch.from_numpy(np.ascontiguousarray(sample.image, dtype=np.float32)))
        has_mask = sample.available.get("segmentation", False) and sample.mask is not None
        masks.append(
            torch.from_numpy(sample.mask.astype(np.float32))
            if has_mask
            else torch.zeros(height, width)
        )
        heatmap, electrodes = _encode_detection(sample, map_height, map_width, stride)
        heatmaps.append(heatmap)
        per_sample.append(electrodes)

    count = max(1, max(centers.shape[0] for centers, _, _ in per_sample))
    batch_size = len(samples)
    center = torch.zeros(batch_size, count, 2)
    size = torch.zeros(batch_size, count, 2)
    index = torch.zeros(batch_size, count, dtype=torch.int64)
    center_mask = torch.zeros(batch_size, count, dtype=torch.bool)
    for i, (centers, sizes, flat) in enumerate(per_sample):
        n = centers.shape[0]
        center[i, :n], size[i, :n], index[i, :n], center_mask[i, :n] = centers, sizes, flat, True

    if sample_ids is None:
        ids = torch.full((batch_size,), -1, dtype=torch.int64)
    else:
        ids = torch.as_tensor(list(sample_ids), dtype=torch.int64)
        if ids.shape != (batch_size,):
            raise ValueError(f"got {ids.numel()} sample ids for {batch_size} samples")
    return {
        "image": torch.stack(images)[:, None],
        "mask": torch.stack(masks)[:, None],
        "heatmap": torch.stack(heatmaps)[:, None],
        "center": center,
        "size": size,
        "index": index,
        "center_mask": center_mask,
        "available": {
            task: torch.tensor([float(s.available.get(task, False)) for s in samples])
            for task in TASKS
        },
        "sample_id": ids,
    }


def _encode_detection(
    sample: Sample, map_height: int, map_width: int, stride: int
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """Heatmap (h, w) and the (centres, sizes, flat indices) of the electrodes inside the map."""
    if not sample.available.get("detection", False):
        empty = torch.zeros(0, 2)
        return torch.zeros(map_height, map_width), (empty, empty, torch.zeros(0, dtype=torch.int64))
    if sample.boxes.shape[0] != sample.electrodes.shape[0]:
        raise ValueError(
            f"{sample.name}: {sample.electrodes.shape[0]} electrodes but "
            f"{sample.boxes.shape[0]} boxes"
        )
    centers = torch.from_numpy(np.asarray(sample.electrodes, dtype=np.float32).reshape(-1, 2))
    sizes = torch.from_numpy(np.asarray(sample.boxes, dtype=np.float32).reshape(-1, 4)[:, 2:])
    heatmap, cells, inside = draw_heatmap(centers, sizes, map_height, map_width, stride)
    flat = cells[inside, 1] * map_width + cells[inside, 0]
    return heatmap, (centers[inside], sizes[inside], flat)


def target_outputs(batch: dict, logit: float = 10.0) -> tuple[Tensor, Tensor, Tensor]:
    """The outputs of a perfect network for a collated batch, shaped like CathNet's.

    What the targets themselves decode to (the ceiling of a stride: benchmarks/ceiling.py,
    tests/test_ceiling.py) and a perfect prediction for the losses and KPIs.

    Args:
        batch: from :func:`collate_batch` (at any stride).
        logit: magnitude of the segmentation logits (+logit on the mask, -logit elsewhere).

    Returns:
        segmentation logits (B, 1, H, W), the heatmap target (B, 1, h, w) and the size map
        (B, 2, h, w): each electrode's box w, h at its centre cell, 0 elsewhere (where two
        electrodes share a cell, one of them).
    """
    segmentation = (2 * batch["mask"] - 1) * logit
    heatmap = batch["heatmap"]
    batch_size, _, height, width = heatmap.shape
    size = torch.zeros(batch_size, 2, height * width)
    for i in range(batch_size):
        real = batch["center_mask"][i]
        size[i][:, batch["index"][i][real]] = batch["size"][i][real].T
    return segmentation, heatmap, size.reshape(batch_size, 2, height, width)
