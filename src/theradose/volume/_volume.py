"""The image container: array + geometry + unit + modality + time (+ uncertainty, history)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from theradose.errors import InputError
from theradose.units import Unit, convert, parse_unit
from theradose.volume._geometry import Geometry

__all__ = ["LabelMap", "Volume"]


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image with its geometry, unit and acquisition time.

    Like MONAI's ``MetaTensor`` or astropy's ``NDData``, the data travels with what is needed to
    interpret it. Instances are immutable records; operations return new volumes and append to
    ``history``.

    Parameters
    ----------
    array : (Z, Y, X) ndarray
        Voxel values in ``unit``.
    geometry : Geometry
        Grid in LPS physical space.
    unit : str
        A unit known to :mod:`theradose.units` (e.g. ``"HU"``, ``"Bq/mL"``, ``"counts"``,
        ``"MBq*h"``, ``"Gy"``). Stored canonically.
    modality : str
        DICOM-style modality: ``"CT"``, ``"NM"``, ``"PT"``, ``"RTDOSE"``, ``"SEG"``, or ``"OT"``
        for derived images (TIA, density, ...).
    acquisition_time : datetime, optional
        Start of the acquisition (naive local time, as DICOM stores it).
    sigma : (Z, Y, X) ndarray, optional
        Standard uncertainty of each voxel, in ``unit``.
    meta : dict
        Free metadata (frame duration, calibration factor, series UID, radiopharmaceutical, ...).
    history : tuple of str
        Operations applied since reading, one human-readable line each.

    Examples
    --------
    >>> import numpy as np
    >>> g = Geometry((2, 3, 4), (4.8, 4.8, 4.8))
    >>> v = Volume(np.ones((2, 3, 4)), g, unit="kBq/mL", modality="NM")
    >>> v.unit, round(v.geometry.voxel_volume_ml, 4)
    ('kBq/mL', 0.1106)

    """

    array: np.ndarray
    geometry: Geometry
    unit: str = "1"
    modality: str = "OT"
    acquisition_time: datetime | None = None
    sigma: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    history: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise InputError(f"array must be 3-D (Z, Y, X), got shape {arr.shape}", field="array")
        if not isinstance(self.geometry, Geometry):
            raise InputError(f"geometry must be a Geometry, got {type(self.geometry).__name__}",
                             field="geometry")
        if arr.shape != self.geometry.shape:
            raise InputError(
                f"array shape {arr.shape} does not match geometry shape {self.geometry.shape}",
                field="array")
        unit = parse_unit(self.unit)
        if self.sigma is not None:
            sig = np.asarray(self.sigma)
            if sig.shape != arr.shape:
                raise InputError(f"sigma shape {sig.shape} does not match array {arr.shape}",
                                 field="sigma")
            object.__setattr__(self, "sigma", sig)
        if self.acquisition_time is not None and not isinstance(self.acquisition_time, datetime):
            raise InputError(
                f"acquisition_time must be a datetime, got {type(self.acquisition_time).__name__}",
                field="acquisition_time")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "unit", unit.name)
        object.__setattr__(self, "modality", str(self.modality).upper())
        object.__setattr__(self, "history", tuple(self.history))

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_array(cls, array, *, spacing_mm, origin_mm=(0.0, 0.0, 0.0), direction=None,
                   **kwargs) -> Volume:
        """Build a volume from an array and grid parameters (see :class:`Geometry`)."""
        arr = np.asarray(array)
        geom = Geometry(arr.shape, spacing_mm, origin_mm,
                        np.eye(3) if direction is None else direction)
        return cls(arr, geom, **kwargs)

    def replace(self, **changes) -> Volume:
        """Copy with fields replaced; ``note=`` appends a line to ``history``."""
        note = changes.pop("note", None)
        if note:
            changes["history"] = (*self.history, note)
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(Z, Y, X)``."""
        return self.geometry.shape

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size ``(sx, sy, sz)`` in mm."""
        return self.geometry.spacing_mm

    @property
    def unit_info(self) -> Unit:
        """The :class:`~theradose.units.Unit` of the voxel values."""
        return parse_unit(self.unit)

    @property
    def conserves(self) -> str:
        """What resampling conserves for this image: ``'total'``, ``'mean'`` or ``'label'``."""
        return self.unit_info.conserves

    # ------------------------------------------------------------------ unit handling
    def to_unit(self, unit: str) -> Volume:
        """Return the volume converted to another unit of the same dimension."""
        target = parse_unit(unit)
        if target.name == self.unit:
            return self
        arr = convert(self.array.astype(np.float64), self.unit, target)
        sig = None if self.sigma is None else convert(self.sigma.astype(np.float64), self.unit,
                                                       target)
        return self.replace(array=arr, sigma=sig, unit=target.name,
                            note=f"unit {self.unit} -> {target.name}")

    def total(self, unit: str | None = None) -> float:
        """Sum over the image of an extensive quantity, or integral of a concentration.

        For ``activity_concentration`` images the integral over the image (concentration ×
        voxel volume) is returned in Bq unless ``unit`` says otherwise; for extensive images the
        plain sum.
        """
        info = self.unit_info
        if info.dimension == "activity_concentration":
            bq = float(np.sum(self.array, dtype=np.float64)) * info.to_base * \
                self.geometry.voxel_volume_ml
            return float(convert(bq, "Bq", unit or "Bq"))
        if info.conserves != "total":
            raise InputError(f"total() needs an extensive quantity or a concentration, not "
                             f"{self.unit} ({info.dimension})", field="unit")
        s = float(np.sum(self.array, dtype=np.float64))
        return float(convert(s, self.unit, unit)) if unit else s

    # ------------------------------------------------------------------ SimpleITK
    def to_sitk(self):
        """Convert to a ``SimpleITK.Image`` (values and geometry; metadata is not carried)."""
        import SimpleITK as sitk

        arr = self.array
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
        img.SetSpacing(self.geometry.spacing_mm)
        img.SetOrigin(self.geometry.origin_mm)
        img.SetDirection(tuple(self.geometry.direction.ravel()))
        return img

    @classmethod
    def from_sitk(cls, image, **kwargs) -> Volume:
        """Build a volume from a 3-D ``SimpleITK.Image``; ``kwargs`` set unit, modality, ..."""
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise InputError(f"image must be 3-D, got {image.GetDimension()}-D", field="image")
        arr = sitk.GetArrayFromImage(image)
        geom = Geometry(arr.shape, image.GetSpacing(), image.GetOrigin(),
                        np.asarray(image.GetDirection()).reshape(3, 3))
        return cls(arr, geom, **kwargs)

    def __repr__(self) -> str:
        t = self.acquisition_time.isoformat() if self.acquisition_time else None
        return (f"{type(self).__name__}(modality={self.modality!r}, unit={self.unit!r}, "
                f"shape={self.shape}, spacing_mm={self.spacing_mm}, acquisition_time={t})")


@dataclass(frozen=True, eq=False, repr=False)
class LabelMap(Volume):
    """An integer label image with a name table (``{label value: name}``); 0 is background.

    Names follow TotalSegmentator where one exists (``kidney_left``, ``liver``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((1, 2, 2), dtype=np.uint8); lab[0, 0, 0] = 3
    >>> lm = LabelMap.from_array(lab, spacing_mm=(1, 1, 1), names={3: "liver"})
    >>> int(lm.mask("liver").sum())
    1

    """

    names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit", "label")
        super().__post_init__()
        arr = self.array
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise InputError(f"label map must hold integers, got dtype {arr.dtype}", field="array")
        names = {int(k): str(v) for k, v in self.names.items()}
        if 0 in names:
            raise InputError("label 0 is background and cannot be named", field="names")
        dup = {n for n in names.values() if list(names.values()).count(n) > 1}
        if dup:
            raise InputError(f"label names must be unique, repeated: {sorted(dup)}",
                             field="names")
        object.__setattr__(self, "names", names)

    @property
    def labels(self) -> dict[str, int]:
        """Inverse name table ``{name: label value}``."""
        return {v: k for k, v in self.names.items()}

    def mask(self, name: str) -> np.ndarray:
        """Boolean ``(Z, Y, X)`` mask of the VOI called ``name``.

        Raises
        ------
        InputError
            If the name is unknown (the message lists the known names).

        """
        labels = self.labels
        if name not in labels:
            raise InputError(f"no VOI named {name!r}; known: {sorted(labels)}", field="name")
        return self.array == labels[name]

    def masks(self) -> dict[str, np.ndarray]:
        """All named VOIs as boolean masks."""
        return {n: self.array == v for v, n in sorted(self.names.items())}

    @classmethod
    def from_masks(cls, masks: dict[str, np.ndarray], geometry: Geometry, **kwargs) -> LabelMap:
        """Build a label map from non-overlapping boolean masks (labels 1, 2, ... in order).

        Raises
        ------
        InputError
            If masks overlap (a label map holds one label per voxel) or have the wrong shape.

        """
        dtype = np.uint8 if len(masks) < 256 else np.uint16
        arr = np.zeros(geometry.shape, dtype=dtype)
        names = {}
        for value, (name, m) in enumerate(masks.items(), start=1):
            m = np.asarray(m, dtype=bool)
            if m.shape != geometry.shape:
                raise InputError(f"mask {name!r} has shape {m.shape}, expected {geometry.shape}",
                                 field="masks")
            if np.any(arr[m] != 0):
                raise InputError(f"mask {name!r} overlaps another mask; a label map holds one "
                                 "label per voxel", field="masks")
            arr[m] = value
            names[value] = name
        return cls(arr, geometry, names=names, **kwargs)
