"""Training augmentations applied consistently to a frame and all its labels.

Geometry (scale, rotation, translation, flips) is one 2x3 affine matrix applied with OpenCV to the
image and mask and with the same matrix to electrode centres, electrode boxes and centerlines, so
labels never drift from the pixels they describe. Photometric changes (gamma, contrast,
brightness, noise) touch the image only.

Coordinates follow OpenCV's pixel-centre convention everywhere in cathtrack: the centre of pixel
(row r, column c) is at (x=c, y=r) and the image covers [-0.5, W-0.5] x [-0.5, H-0.5]. A
horizontal flip therefore maps x to W - 1 - x.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from cathtrack.data.sample import CatheterLabel, Sample

# Points exactly on the image border survive float round-off of the affine map.
_BORDER_TOLERANCE_PX = 1e-6


@dataclass
class Augment:
    """Random augmentation parameters; call the instance on a :class:`Sample`.

    Geometry is sampled about the image centre; photometric changes act on the [0, 1] image.
    Every range is inclusive; an identity value (scale (1, 1), rotation 0, ...) turns that part off.

    Attributes:
        scale: (min, max) isotropic zoom factor, sampled log-uniformly. Sensible: 0.5..2.
        rotation_deg: rotation sampled uniformly in [-rotation_deg, +rotation_deg]. 0..180.
        translate: shift sampled uniformly in [-translate, +translate] times the image side. 0..0.5.
        hflip_p: probability of a horizontal (left-right) flip: LAO and RAO views mirror each
            other, so this is realistic. 0..1.
        vflip_p: probability of a vertical flip. Off by default: catheters enter from the bottom
            (femoral access) in most frames and a model may use that prior. 0..1.
        gamma: (min, max) gamma exponent out = x ** gamma, sampled log-uniformly. 0.5..2.
        contrast: (min, max) contrast factor about mid-gray 0.5. 0.5..1.5.
        brightness: offset sampled uniformly in [-brightness, +brightness]. 0..0.3.
        noise_std: (min, max) standard deviation of additive Gaussian noise, sampled uniformly,
            in units of the [0, 1] range (low-dose fluoroscopy is noisy). 0..0.1.
        fill: value of pixels that come from outside the source image: 0 looks like a collimator
            shutter, a common sight in fluoroscopy.
    """

    scale: tuple[float, float] = (0.85, 1.15)
    rotation_deg: float = 15.0
    translate: float = 0.05
    hflip_p: float = 0.5
    vflip_p: float = 0.0
    gamma: tuple[float, float] = (0.75, 1.35)
    contrast: tuple[float, float] = (0.85, 1.15)
    brightness: float = 0.05
    noise_std: tuple[float, float] = (0.0, 0.03)
    fill: float = 0.0

    def __post_init__(self) -> None:
        for name in ("scale", "gamma", "contrast", "noise_std"):
            low, high = getattr(self, name)
            if not 0 <= low <= high or (name in ("scale", "gamma") and low == 0):
                raise ValueError(
                    f"Augment.{name} must be an ordered (min, max) of sensible values, got {(low, high)}"
                )
        for name in ("hflip_p", "vflip_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"Augment.{name} is a probability, got {getattr(self, name)}")
        for name in ("rotation_deg", "translate", "brightness"):
            if getattr(self, name) < 0:
                raise ValueError(f"Augment.{name} is a symmetric range half-width, must be >= 0")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """Return an augmented copy of ``sample`` (same image size; the input is not modified).

        Electrodes whose centre leaves the image are dropped from every electrode array together;
        centerlines are clipped at the image border; tasks that were unavailable stay so.
        """
        height, width = sample.image.shape
        matrix = self.sample_matrix(width, height, rng)
        warped = warp_sample(sample, matrix, fill=self.fill)
        warped.image = self._photometric(warped.image, rng)
        return warped

    def sample_matrix(self, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
        """Draw the geometric part: a (2, 3) float64 affine matrix mapping source to output x, y."""
        scale = math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        angle = math.radians(rng.uniform(-self.rotation_deg, self.rotation_deg))
        shift = rng.uniform(-self.translate, self.translate, size=2) * (width, height)
        flip_x = -1.0 if rng.random() < self.hflip_p else 1.0
        flip_y = -1.0 if rng.random() < self.vflip_p else 1.0
        cos, sin = math.cos(angle), math.sin(angle)
        linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([scale * flip_x, scale * flip_y])
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        offset = centre + shift - linear @ centre
        return np.hstack([linear, offset[:, None]])

    def _photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gamma = math.exp(rng.uniform(math.log(self.gamma[0]), math.log(self.gamma[1])))
        contrast = rng.uniform(*self.contrast)
        brightness = rng.uniform(-self.brightness, self.brightness)
        noise_std = rng.uniform(*self.noise_std)
        # Identity steps are skipped so that a zero-parameter Augment is exactly the identity.
        if gamma != 1.0:
            image = np.power(image, np.float32(gamma))
        if contrast != 1.0 or brightness != 0.0:
            image = (image - 0.5) * np.float32(contrast) + np.float32(0.5 + brightness)
        if noise_std > 0:
            image = image + rng.normal(0.0, noise_std, image.shape).astype(np.float32)
        return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def warp_sample(sample: Sample, matrix: np.ndarray, fill: float = 0.0) -> Sample:
    """Apply one affine map to the image, the mask and all labels; output keeps the input size.

    Args:
        sample: image (H, W) float32 in [0, 1], mask (H, W) uint8 {0, 1} or None.
        matrix: (2, 3) affine matrix mapping source x, y to output x, y (pixel-centre convention).
        fill: image value outside the source.

    The image is resampled bilinearly; the mask bilinearly and then thresholded at 0.5, which
    keeps it binary without the staircase of nearest-neighbour sampling on thin shafts.
    """
    height, width = sample.image.shape
    warped = warp_labels(sample, matrix, width, height)
    warped.image = cv2.warpAffine(
        sample.image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )
    if sample.mask is not None:
        coverage = cv2.warpAffine(
            sample.mask.astype(np.float32),
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        warped.mask = (coverage >= 0.5).astype(np.uint8)
    return warped


def crop_sample(sample: Sample, left: int, top: int, size: int) -> Sample:
    """The ``size`` x ``size`` window of ``sample`` whose top-left pixel is (``left``, ``top``).

    Pixels are sliced (no resampling); labels are shifted with :func:`warp_labels`, so electrodes
    outside the window are dropped and centerlines are clipped at its border.
    """
    height, width = sample.image.shape
    if not (0 <= left <= width - size and 0 <= top <= height - size):
        raise ValueError(
            f"a {size}x{size} crop at ({left}, {top}) leaves the {width}x{height} image"
        )
    matrix = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top]])
    cropped = warp_labels(sample, matrix, size, size)
    window = np.s_[top : top + size, left : left + size]
    cropped.image = np.ascontiguousarray(sample.image[window])
    if sample.mask is not None:
        cropped.mask = np.ascontiguousarray(sample.mask[window])
    return cropped


def random_crop(sample: Sample, size: int, rng: np.random.Generator) -> Sample:
    """A uniformly placed ``size`` x ``size`` crop of ``sample`` (:func:`crop_sample`)."""
    height, width = sample.image.shape
    left = int(rng.integers(0, width - size + 1))
    top = int(rng.integers(0, height - size + 1))
    return crop_sample(sample, left, top, size)


def warp_labels(sample: Sample, matrix: np.ndarray, width: int, height: int) -> Sample:
    """Map the point labels of ``sample`` through an affine matrix into a ``width`` x ``height`` frame.

    Returns a copy whose image and mask are the input's (callers resample those themselves).

    - electrodes (N, 2): mapped; those whose centre falls outside the output frame are dropped,
      together with their rows of ``boxes``, ``electrode_catheter`` and ``electrode_index``.
    - boxes (N, 4) COCO [x, y, w, h]: the four corners are mapped and the axis-aligned box around
      them is clipped to the frame (so a box still contains its centre).
    - centerlines (M, 2): mapped and clipped at the frame border; if the curve leaves and
      re-enters, the longest visible piece is kept. A catheter that becomes invisible is dropped.
    - pixel_spacing_mm: divided by the scale when the map is isotropic, else unknown (None).
    """
    linear, offset = matrix[:, :2], matrix[:, 2]
    low = np.array([-0.5, -0.5])
    high = np.array([width - 0.5, height - 0.5])

    centres = sample.electrodes.reshape(-1, 2) @ linear.T + offset
    keep = np.all(
        (centres >= low - _BORDER_TOLERANCE_PX) & (centres <= high + _BORDER_TOLERANCE_PX), axis=1
    )
    boxes = _map_boxes(sample.boxes.reshape(-1, 4)[keep], linear, offset, low, high)

    catheters = []
    for catheter in sample.catheters:
        line = catheter.centerline.reshape(-1, 2)
        visible = _clip_polyline(line @ linear.T + offset, low, high) if len(line) else line
        if len(line) and not len(visible):
            continue
        catheters.append(
            CatheterLabel(catheter.id, catheter.type, visible.astype(np.float32), catheter.target)
        )

    column_scales = np.linalg.norm(linear, axis=0)
    isotropic = math.isclose(column_scales[0], column_scales[1], rel_tol=1e-6)
    spacing = sample.pixel_spacing_mm
    if spacing is not None:
        spacing = spacing / float(column_scales[0]) if isotropic else None

    return dataclasses.replace(
        sample,
        electrodes=centres[keep].astype(np.float32),
        boxes=boxes,
        electrode_catheter=sample.electrode_catheter[keep],
        electrode_index=sample.electrode_index[keep],
        catheters=catheters,
        available=dict(sample.available),
        pixel_spacing_mm=spacing,
    )


def _map_boxes(
    boxes: np.ndarray, linear: np.ndarray, offset: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """(K, 4) COCO boxes -> (K, 4) float32 axis-aligned boxes of the mapped corners, clipped."""
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    corners = np.stack(
        [np.stack(pair, axis=-1) for pair in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))], axis=1
    )  # (K, 4 corners, 2)
    mapped = corners @ linear.T + offset
    top_left = np.clip(mapped.min(axis=1), low, high)
    bottom_right = np.clip(mapped.max(axis=1), low, high)
    return np.hstack([top_left, bottom_right - top_left]).astype(np.float32).reshape(-1, 4)


def _clip_polyline(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Longest piece of an open polyline inside the box [low, high], cut exactly at the border.

    Args:
        points: (M, 2) float vertices in order (distal -> proximal is preserved).

    Returns:
        (K, 2) float64 vertices, K = 0 when nothing is inside.
    """
    if len(points) == 1:
        inside = np.all((points >= low) & (points <= high))
        return points if inside else points[:0]
    pieces: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    for start, end in zip(points[:-1], points[1:], strict=True):
        span = _clip_segment(start, end, low, high)
        if span is None:
            current = _close_piece(current, pieces)
            continue
        t_in, t_out = span
        if not current or t_in > 0:
            current = _close_piece(current, pieces)
            current.append(start + t_in * (end - start))
        current.append(start + t_out * (end - start))
        if t_out < 1:
            current = _close_piece(current, pieces)
    _close_piece(current, pieces)
    if not pieces:
        return points[:0]
    lengths = [np.linalg.norm(np.diff(piece, axis=0), axis=1).sum() for piece in pieces]
    return np.array(pieces[int(np.argmax(lengths))])


def _close_piece(current: list[np.ndarray], pieces: list[list[np.ndarray]]) -> list[np.ndarray]:
    if current:
        pieces.append(current)
    return []


def _clip_segment(
    start: np.ndarray, end: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[float, float] | None:
    """Liang-Barsky: the parameter interval [t_in, t_out] of start->end inside the box, or None."""
    t_in, t_out = 0.0, 1.0
    delta = end - start
    for axis in range(2):
        if delta[axis] == 0:
            if not low[axis] <= start[axis] <= high[axis]:
                return None
            continue
        t_a = (low[axis] - start[axis]) / delta[axis]
        t_b = (high[axis] - start[axis]) / delta[axis]
        t_in, t_out = max(t_in, min(t_a, t_b)), min(t_out, max(t_a, t_b))
        if t_in > t_out:
            return None
    return t_in, t_out
