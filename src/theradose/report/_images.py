"""The images a report shows, checked once, and the slice through the hottest VOI."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theradose.errors import InputError, UnitError
from theradose.volume import Geometry, LabelMap, Volume

__all__ = ["ReportImages"]


@dataclass(frozen=True, eq=False)
class ReportImages:
    """Images for the report, all on the reference grid (the reference time point's CT grid).

    Parameters
    ----------
    ct : Volume
        (Z, Y, X) CT in HU (another unit is shown with a 1–99 % percentile window).
    dose : Volume
        (Z, Y, X) absorbed dose (Gy or mGy; shown in Gy).
    spect : Volume
        (Z, Y, X) emission image of the first time point (any activity or count unit).
    labels : LabelMap
        (Z, Y, X) VOIs; names as in ``results["vois"]``.

    Raises
    ------
    InputError
        If an argument has the wrong type.
    GeometryMismatchError
        If the images are not on one grid.
    UnitError
        If ``dose`` is not in a dose unit.

    """

    ct: Volume
    dose: Volume
    spect: Volume
    labels: LabelMap

    def __post_init__(self) -> None:
        for name in ("ct", "dose", "spect"):
            if not isinstance(getattr(self, name), Volume):
                raise InputError(f"expected a theradose Volume, got "
                                 f"{type(getattr(self, name)).__name__}", field=f"images.{name}")
        if not isinstance(self.labels, LabelMap):
            raise InputError(f"expected a theradose LabelMap, got {type(self.labels).__name__}",
                             field="images.labels")
        if self.dose.unit_info.dimension != "absorbed_dose":
            raise UnitError(f"dose image has unit {self.dose.unit!r}; accepted: Gy, mGy",
                            field="images.dose")
        ref = self.ct.geometry
        for name in ("dose", "spect", "labels"):
            ref.require_same(getattr(self, name).geometry, what=f"images.ct and images.{name}",
                             file=None)


@dataclass(frozen=True)
class OrientedImages:
    """Arrays reoriented so index axes point to L, P, S; spacing (x, y, z) in mm."""

    ct: np.ndarray
    dose_gy: np.ndarray
    spect: np.ndarray
    labels: np.ndarray
    names: dict[int, str]
    spacing_mm: tuple[float, float, float]
    ct_unit: str
    spect_unit: str


def _to_lps(v: Volume) -> np.ndarray:
    """Array ``[z, y, x]`` whose index axes run along L, P, S (flips and axis permutations)."""
    import SimpleITK as sitk

    img = sitk.DICOMOrient(v.to_sitk(), "LPS")
    return sitk.GetArrayFromImage(img)


def _lps_spacing(g: Geometry) -> tuple[float, float, float]:
    """Spacing along L, P, S: each index axis goes to the LPS axis its direction points to."""
    out = [0.0, 0.0, 0.0]
    for i in range(3):
        out[int(np.argmax(np.abs(g.direction[:, i])))] = g.spacing_mm[i]
    return (out[0], out[1], out[2])


def orient(images: ReportImages) -> OrientedImages:
    """Reorient the report images to LPS index axes (for radiological display)."""
    return OrientedImages(
        ct=_to_lps(images.ct).astype(np.float32),
        dose_gy=_to_lps(images.dose.to_unit("Gy")).astype(np.float64),
        spect=_to_lps(images.spect).astype(np.float32),
        labels=_to_lps(images.labels),
        names=dict(images.labels.names),
        spacing_mm=_lps_spacing(images.ct.geometry),
        ct_unit=images.ct.unit,
        spect_unit=images.spect.unit,
    )


def hottest_voi(o: OrientedImages) -> tuple[str | None, tuple[int, int, int]]:
    """The VOI with the highest mean dose and the (z, y, x) voxel of its maximum dose.

    Falls back to the VOI centroid when the dose is zero there, and to the image centre (and
    ``None``) when no named VOI has a voxel.
    """
    best: tuple[float, str, np.ndarray] | None = None
    for value, name in sorted(o.names.items()):
        m = o.labels == value
        if not m.any():
            continue
        mean = float(o.dose_gy[m].mean())
        if best is None or mean > best[0]:
            best = (mean, name, m)
    if best is None:
        return None, tuple(int(n) // 2 for n in o.labels.shape)  # type: ignore[return-value]
    _, name, m = best
    d = np.where(m, o.dose_gy, -np.inf)
    if float(d.max()) > 0:
        idx = np.unravel_index(int(np.argmax(d)), d.shape)
    else:
        idx = tuple(np.round(np.argwhere(m).mean(axis=0)).astype(int))
    return name, (int(idx[0]), int(idx[1]), int(idx[2]))
