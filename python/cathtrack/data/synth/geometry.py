"""Perspective C-arm projection from patient millimetres to image pixels.

Patient frame (mm, origin at the heart centre): x towards the patient's left, y towards the
feet, z anterior. In a PA view (LAO = cranial = 0) the source is behind the patient and the
image shows the patient's left on the right, head at the top, as clinical displays do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CArmView:
    """One C-arm pose and detector.

    Attributes:
        rotation: (3, 3) float64; rows are the image x, image y and beam (source -> detector)
            axes expressed in patient coordinates.
        isocentre_mm: (3,) patient point on the central ray.
        source_isocentre_mm: focal spot to isocentre distance.
        pixel_mm: pixel spacing at the isocentre, mm.
        size: image height = width, pixels.
    """

    rotation: np.ndarray
    isocentre_mm: np.ndarray
    source_isocentre_mm: float
    pixel_mm: float
    size: int

    @classmethod
    def from_angles(
        cls,
        lao_deg: float,
        cranial_deg: float,
        isocentre_mm: np.ndarray,
        source_isocentre_mm: float,
        pixel_mm: float,
        size: int,
    ) -> CArmView:
        """Build the pose: LAO about the long axis first, then the cranial tilt about image x."""
        lao, cranial = np.radians(lao_deg), np.radians(cranial_deg)
        x1 = np.array([np.cos(lao), 0.0, -np.sin(lao)])
        y1 = np.array([0.0, 1.0, 0.0])
        z1 = np.array([np.sin(lao), 0.0, np.cos(lao)])
        y2 = np.cos(cranial) * y1 + np.sin(cranial) * z1
        z2 = -np.sin(cranial) * y1 + np.cos(cranial) * z1
        rotation = np.stack([x1, y2, z2])
        return cls(
            rotation, np.asarray(isocentre_mm, np.float64), source_isocentre_mm, pixel_mm, size
        )

    @property
    def beam_direction(self) -> np.ndarray:
        """(3,) unit vector from the source towards the detector, patient coordinates."""
        return self.rotation[2]

    def project(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project patient points onto the image.

        Args:
            points_mm: (N, 3) patient coordinates, mm.
        Returns:
            uv: (N, 2) float64 pixel coordinates x, y (pixel centres at integers).
            px_per_mm: (N,) float64 local magnification, pixels per mm at each point's depth.
        """
        camera = (np.asarray(points_mm, np.float64) - self.isocentre_mm) @ self.rotation.T
        # Points nearer the source are magnified more; the isocentre maps at 1 / pixel_mm.
        px_per_mm = (
            self.source_isocentre_mm / (self.source_isocentre_mm + camera[:, 2]) / self.pixel_mm
        )
        centre = (self.size - 1) / 2.0
        uv = camera[:, :2] * px_per_mm[:, None] + centre
        return uv, px_per_mm

    def unproject(self, uv: np.ndarray, depth_mm: float) -> np.ndarray:
        """Patient points that project to pixels ``uv`` (N, 2) at beam depth ``depth_mm``.

        ``depth_mm`` is measured along the beam from the isocentre (negative = towards the
        source). Returns (N, 3) float64 patient coordinates.
        """
        uv = np.atleast_2d(np.asarray(uv, np.float64))
        centre = (self.size - 1) / 2.0
        scale = (self.source_isocentre_mm + depth_mm) / self.source_isocentre_mm * self.pixel_mm
        camera = np.column_stack([(uv - centre) * scale, np.full(len(uv), depth_mm)])
        return camera @ self.rotation + self.isocentre_mm
