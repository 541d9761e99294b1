"""Where the anatomy is: landmark positions of an AF-ablation patient in the heart frame.

Coordinates are mm in the patient frame of :mod:`.geometry` (x left, y feet, z anterior) with
the origin at the heart centre. The nominal values describe an average adult; each scene
jitters them so devices do not always take the same path.
"""

from __future__ import annotations

import numpy as np

MIDLINE_X_MM = -25.0  # the heart sits left of the midline: the spine and sternum are at x = -25
SPINE_Z_MM = -85.0  # vertebral bodies, behind the heart
STERNUM_Z_MM = 70.0
OESOPHAGUS_XZ_MM = (-12.0, -68.0)  # runs right behind the left atrium

NOMINAL_MM: dict[str, tuple[float, float, float]] = {
    "ivc_low": (-28.0, 240.0, -30.0),  # femoral route, far below the field
    "ivc": (-28.0, 95.0, -28.0),
    "ra_floor": (-32.0, 42.0, -20.0),
    "ra": (-40.0, 5.0, -10.0),
    "svc": (-30.0, -75.0, -20.0),
    "svc_high": (-32.0, -240.0, -22.0),  # jugular / subclavian route, far above the field
    "innominate": (20.0, -120.0, 5.0),
    "subclavian": (95.0, -165.0, 35.0),  # lead entry into the left subclavian vein
    "fossa": (-8.0, 5.0, -28.0),  # transseptal puncture site
    "la": (18.0, -8.0, -45.0),
    "lspv": (48.0, -28.0, -55.0),
    "lipv": (46.0, 6.0, -62.0),
    "rspv": (-14.0, -28.0, -58.0),
    "ripv": (-14.0, 6.0, -64.0),
    "cs_os": (-12.0, 28.0, -35.0),
    "mitral": (20.0, 15.0, -25.0),
    "tricuspid": (-8.0, 22.0, 8.0),
    "his": (-5.0, -2.0, -6.0),
    "rv_apex": (42.0, 58.0, 38.0),
    "raa": (-30.0, -32.0, 18.0),
    "hra": (-48.0, -35.0, -10.0),
}

MITRAL_NORMAL = np.array([0.55, 0.25, 0.8])  # the AV groove plane faces left, anterior, down
PULMONARY_VEINS = ("lspv", "lipv", "rspv", "ripv")


def sample_landmarks(rng: np.random.Generator, jitter_mm: float) -> dict[str, np.ndarray]:
    """Nominal landmarks, each displaced by an isotropic Gaussian of std ``jitter_mm``.

    Returns name -> (3,) float64 mm.
    """
    return {name: np.asarray(p) + rng.normal(0.0, jitter_mm, 3) for name, p in NOMINAL_MM.items()}
