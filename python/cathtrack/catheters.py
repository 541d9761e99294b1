"""Catalogue of the intracardiac catheters cathtrack knows (docs/design.md 7).

This module is the single source of truth for electrode counts, lengths and spacings. The
synthetic engine renders devices from it, and the pattern matcher
(:func:`cathtrack.postprocess.classify_catheter`) builds its templates from it.

All lengths are in millimetres. Electrode lists run distal (tip) -> proximal. ``gaps_mm`` are
edge-to-edge distances between consecutive electrodes, the way EP catheter spacings such as
"2-8-2" are quoted by manufacturers; ``centre_spacing_mm`` converts them to the centre-to-centre
distances an electrode detector actually measures.

Catheters without electrodes (guiding and diagnostic catheters, long sheaths) are catalogue types
too, with no electrode lengths and no gaps: they are catheters (segmented, typed by the
synthetic engine) but the spacing pattern matcher never predicts them. Their types come after
the electrode catheters, so the type indices of the older types never change.
"""

from __future__ import annotations

from dataclasses import dataclass

FRENCH_MM = 1.0 / 3.0  # 1 Fr = 1/3 mm outer diameter


@dataclass(frozen=True)
class CatheterVariant:
    """One concrete device model.

    Attributes:
        type: catalogue type name (one of :data:`CATHETER_TYPES`).
        name: variant name, usually the quoted spacing ("2-8-2").
        electrode_lengths_mm: length along the shaft of each electrode, distal -> proximal;
            empty for a catheter or sheath without electrodes.
        gaps_mm: edge-to-edge gap between consecutive electrodes (len = electrodes - 1, empty
            without electrodes).
        shaft_diameter_mm: outer diameter of the shaft (a sheath's French size is its inner
            diameter; the outer one is about 2 Fr more).
        loop_diameter_mm: (min, max) loop diameter for circular catheters, else None.
    """

    type: str
    name: str
    electrode_lengths_mm: tuple[float, ...]
    gaps_mm: tuple[float, ...]
    shaft_diameter_mm: float
    loop_diameter_mm: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.gaps_mm) != max(len(self.electrode_lengths_mm) - 1, 0):
            raise ValueError(f"{self.type}/{self.name}: need one gap between each electrode pair")

    @property
    def n_electrodes(self) -> int:
        return len(self.electrode_lengths_mm)

    @property
    def centre_spacing_mm(self) -> tuple[float, ...]:
        """Centre-to-centre distances between consecutive electrodes, distal -> proximal."""
        lengths = self.electrode_lengths_mm
        return tuple(
            gap + 0.5 * (lengths[i] + lengths[i + 1]) for i, gap in enumerate(self.gaps_mm)
        )

    @property
    def electrode_centres_mm(self) -> tuple[float, ...]:
        """Arc-length position of each electrode centre from the distal end of the tip electrode."""
        if not self.electrode_lengths_mm:
            return ()
        centres = [0.5 * self.electrode_lengths_mm[0]]
        for spacing in self.centre_spacing_mm:
            centres.append(centres[-1] + spacing)
        return tuple(centres)


def _repeat(pattern: tuple[float, ...], n_gaps: int) -> tuple[float, ...]:
    return tuple(pattern[i % len(pattern)] for i in range(n_gaps))


CATALOGUE: tuple[CatheterVariant, ...] = (
    CatheterVariant("cs_decapolar", "2-8-2", (2.0,) * 10, _repeat((2.0, 8.0), 9), 6 * FRENCH_MM),
    CatheterVariant("cs_decapolar", "2-5-2", (1.0,) * 10, _repeat((2.0, 5.0), 9), 6 * FRENCH_MM),
    CatheterVariant("quadripolar", "2-5-2", (2.0,) * 4, (2.0, 5.0, 2.0), 6 * FRENCH_MM),
    CatheterVariant("quadripolar", "5-5-5", (2.0,) * 4, (5.0, 5.0, 5.0), 5 * FRENCH_MM),
    CatheterVariant(
        "ablation", "3.5mm-1-6-2", (3.5, 1.0, 1.0, 1.0), (1.0, 6.0, 2.0), 7.5 * FRENCH_MM
    ),
    CatheterVariant("ablation", "4mm-1-6-2", (4.0, 1.0, 1.0, 1.0), (1.0, 6.0, 2.0), 8 * FRENCH_MM),
    CatheterVariant(
        "circular_mapping", "10-pole", (1.0,) * 10, (5.0,) * 9, 7 * FRENCH_MM, (15.0, 25.0)
    ),
    CatheterVariant(
        "circular_mapping", "20-pole", (1.0,) * 20, (2.0,) * 19, 7 * FRENCH_MM, (15.0, 25.0)
    ),
    CatheterVariant("pacing_lead", "bipolar", (2.0, 3.0), (10.0,), 6.5 * FRENCH_MM),
    # Without electrodes (appended: the indices of the types above stay stable).
    CatheterVariant("guiding_catheter", "6Fr", (), (), 6 * FRENCH_MM),
    CatheterVariant("guiding_catheter", "7Fr", (), (), 7 * FRENCH_MM),
    CatheterVariant("guiding_catheter", "8Fr", (), (), 8 * FRENCH_MM),
    CatheterVariant("diagnostic_catheter", "5Fr", (), (), 5 * FRENCH_MM),
    CatheterVariant("diagnostic_catheter", "6Fr", (), (), 6 * FRENCH_MM),
    CatheterVariant("long_sheath", "8.5Fr", (), (), 10.5 * FRENCH_MM),
    CatheterVariant("long_sheath", "12Fr", (), (), 15 * FRENCH_MM),
)

CATHETER_TYPES: tuple[str, ...] = tuple(dict.fromkeys(v.type for v in CATALOGUE))
"""Type names in catalogue order (the native engine reports a type as an index into it)."""

UNKNOWN_TYPE = "unknown"
"""The type of a catheter with fewer than two electrodes or no matching spacing template."""

TYPE_COLOURS: dict[str, tuple[float, float, float]] = {
    "cs_decapolar": (0.2, 0.6, 1.0),
    "quadripolar": (0.2, 0.9, 0.4),
    "ablation": (1.0, 0.3, 0.2),
    "circular_mapping": (0.7, 0.3, 1.0),
    "pacing_lead": (1.0, 0.8, 0.1),
    "guiding_catheter": (1.0, 0.5, 0.75),
    "diagnostic_catheter": (0.5, 0.85, 0.95),
    "long_sheath": (0.8, 0.75, 0.45),
}
"""Display colour of each type as (r, g, b) in [0, 1], for overlays and ROS markers."""
UNKNOWN_COLOUR = (0.7, 0.7, 0.7)


def type_name(index: int) -> str:
    """The name of a type index as the native engine reports it (-1: :data:`UNKNOWN_TYPE`)."""
    return CATHETER_TYPES[index] if index >= 0 else UNKNOWN_TYPE


def type_colour(catheter_type: str) -> tuple[float, float, float]:
    """The display colour of a type name (grey for unknown)."""
    return TYPE_COLOURS.get(catheter_type, UNKNOWN_COLOUR)


def variants_of(catheter_type: str) -> tuple[CatheterVariant, ...]:
    """All catalogue variants of one type; ``ValueError`` for an unknown type."""
    found = tuple(v for v in CATALOGUE if v.type == catheter_type)
    if not found:
        raise ValueError(
            f"unknown catheter type {catheter_type!r}; known: {', '.join(CATHETER_TYPES)}"
        )
    return found
