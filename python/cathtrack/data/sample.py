"""The in-memory form of one labelled frame, shared by every loader and the synthetic engine."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TASKS: tuple[str, ...] = ("segmentation", "detection")


@dataclass
class CatheterLabel:
    """Ground truth of one device instance.

    Attributes:
        id: instance id, unique within the sample (COCO annotation id when read from COCO).
        type: catalogue type (:data:`cathtrack.catheters.CATHETER_TYPES`) or "unknown".
        centerline: (M, 2) float32 x, y pixels, ordered distal tip -> proximal.
        target: True for devices that are labelled targets (inside the heart). Distractors may
            be stored with ``target=False`` for analysis; they never enter ``Sample.mask``.
    """

    id: int
    type: str
    centerline: np.ndarray
    target: bool = True


@dataclass
class Sample:
    """One frame with its labels.

    Attributes:
        image: (H, W) float32 in [0, 1], display convention (dense/metal = dark).
        mask: (H, W) uint8 in {0, 1}: union of target devices; None when unavailable.
        electrodes: (N, 2) float32 electrode centres, x, y in pixels.
        boxes: (N, 4) float32 electrode footprints, COCO [x, y, w, h] in pixels.
        electrode_catheter: (N,) int64 id of the catheter each electrode belongs to.
        electrode_index: (N,) int64 position along its catheter counted from the tip (0 = tip).
        catheters: target (and optionally non-target) device instances.
        available: task name -> whether that task's labels exist (the paper's delta). A task
            that is unavailable is unknown, not empty.
        name: identifier (file name or synthetic id).
        pixel_spacing_mm: detector pixel spacing when known.
    """

    image: np.ndarray
    mask: np.ndarray | None = None
    electrodes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    electrode_catheter: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    electrode_index: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    catheters: list[CatheterLabel] = field(default_factory=list)
    available: dict[str, bool] = field(
        default_factory=lambda: {"segmentation": True, "detection": True}
    )
    name: str = ""
    pixel_spacing_mm: float | None = None
