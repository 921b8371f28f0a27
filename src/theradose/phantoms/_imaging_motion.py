"""Patient repositioning between time points: a rigid transform plus a smooth deformation.

Convention (the SimpleITK/ITK one): a transform maps points of the **output (fixed)** space to
the **input (moving)** space. Here the output space is the patient as positioned at the new time
point and the input space is the reference anatomy, so for a point ``x`` (LPS, mm) of the
repositioned image

    x_ref = T(x) = R · (x + u(x) − c) + c + t

with ``u`` the smooth deformation (breathing and organ shift, evaluated in the repositioned
frame), ``R`` the rotation (ITK ``Euler3DTransform`` angles about x, y, z, ``R = Rz·Rx·Ry``),
``c`` the centre of rotation and ``t`` the translation. The warped image is
``I_new(x) = I_ref(T(x))``: a marker at ``p`` in the reference appears at ``T⁻¹(p)``.

The deformation is analytic, so the truth is its parameter set (``PatientMotion.to_dict()``):

* a smooth, **divergence-free** (volume-preserving to first order) random field drawn as a sum
  of random Fourier features (Rahimi & Recht 2007):
  ``u(x) = a √(2/K) Σ_k d_k cos(ω_k · (x − c) + φ_k)`` with ``ω_k ~ N(0, I/ℓ²)``,
  ``φ_k ~ U(0, 2π)`` and unit directions ``d_k ⊥ ω_k`` (so ``∇·u = 0`` exactly: tissue is
  nearly incompressible and organ volumes are kept; the Jacobian determinant is
  ``1 + O(|∇u|²)``, |∇u| ≈ a/ℓ). Over draws, ``E|u|² = a²`` and the correlation of ``u`` at two
  points decays as ``exp(−r²/(2ℓ²))``;
* a breathing term along the superior–inferior axis (LPS +z is superior),
  ``u_z += b exp(−(z − z_d)²/(2 w²))``, largest at the diaphragm height ``z_d``.

References
----------
A. Rahimi and B. Recht, "Random features for large-scale kernel machines", Advances in Neural
Information Processing Systems 20 (2007) 1177-1184.
Y. Seppenwoolde et al., "Precise and real-time measurement
of 3D tumor motion in lung due to breathing and heartbeat", Int. J. Radiat. Oncol. Biol. Phys.
53 (2002) 822-834, doi:10.1016/S0360-3016(02)02803-1 (free-breathing motion is largest along
the superior–inferior axis and in the lower lobes, near the diaphragm: the default 5 mm peak is
a small, conservative amplitude).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from theradose.errors import InputError
from theradose.io._outputs import atomic_path
from theradose.volume import Geometry, LabelMap, Volume

__all__ = ["PatientMotion", "apply_to_volume", "random_transform", "write_transform"]

_CONVENTION = ("maps points of the repositioned (output/fixed) image to the reference "
               "(input/moving) anatomy: x_ref = R (x + u(x) - c) + c + t, LPS mm; "
               "R = Rz Rx Ry (ITK Euler3DTransform)")


def _vec3(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float).ravel()
    if arr.size != 3 or not np.all(np.isfinite(arr)):
        raise InputError(f"must be 3 finite numbers (x, y, z), got {value!r}", field=name)
    return arr


def _non_negative(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"must be a number >= 0, got {value!r}", field=name) from None
    if not (math.isfinite(v) and v >= 0):
        raise InputError(f"must be a finite number >= 0, got {value!r}", field=name)
    return v


def _positive(value, name: str) -> float:
    v = _non_negative(value, name)
    if v <= 0:
        raise InputError(f"must be > 0, got {value!r}", field=name)
    return v


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                         f"{type(rng).__name__}", field="rng")
    return rng


def _euler_matrix(angles_rad: np.ndarray) -> np.ndarray:
    """ITK Euler3DTransform matrix (ComputeZYX off): ``R = Rz · Rx · Ry``."""
    ax, ay, az = angles_rad
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay),
                              math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass(frozen=True, eq=False)
class PatientMotion:
    """Truth of one repositioning: rigid transform + smooth deformation (see module docstring).

    Parameters
    ----------
    rotation_deg : (3,) array_like
        Euler angles about the x, y, z axes in degrees (ITK ``Euler3DTransform``).
    translation_mm : (3,) array_like
        Translation ``t`` in mm (x, y, z, LPS).
    centre_mm : (3,) array_like
        Centre of rotation ``c`` in mm; also the origin of the random field's phases.
    field_rms_mm : float
        RMS magnitude ``a`` of the random deformation field over draws (mm).
    wavevectors_per_mm : (K, 3) array_like
        Angular frequencies ``ω_k`` of the random Fourier features (rad/mm).
    phases_rad : (K,) array_like
        Phases ``φ_k``.
    directions : (K, 3) array_like
        Unit displacement directions ``d_k``, perpendicular to ``ω_k``.
    breathing_mm : float
        Signed superior–inferior displacement ``b`` at the diaphragm (mm).
    diaphragm_z_mm : float
        Height ``z_d`` of the diaphragm (LPS z, mm).
    breathing_width_mm : float
        Gaussian width ``w`` of the breathing profile along z (mm).

    """

    rotation_deg: np.ndarray
    translation_mm: np.ndarray
    centre_mm: np.ndarray
    field_rms_mm: float = 0.0
    wavevectors_per_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    phases_rad: np.ndarray = field(default_factory=lambda: np.zeros(0))
    directions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    breathing_mm: float = 0.0
    diaphragm_z_mm: float = 0.0
    breathing_width_mm: float = 80.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotation_deg", _vec3(self.rotation_deg, "rotation_deg"))
        object.__setattr__(self, "translation_mm", _vec3(self.translation_mm, "translation_mm"))
        object.__setattr__(self, "centre_mm", _vec3(self.centre_mm, "centre_mm"))
        w = np.asarray(self.wavevectors_per_mm, dtype=float).reshape(-1, 3)
        p = np.asarray(self.phases_rad, dtype=float).ravel()
        d = np.asarray(self.directions, dtype=float).reshape(-1, 3)
        if p.shape != (len(w),) or d.shape != w.shape:
            raise InputError(f"phases_rad {p.shape} and directions {d.shape} must match "
                             f"wavevectors_per_mm {w.shape} (K,) and (K, 3)", field="phases_rad")
        object.__setattr__(self, "wavevectors_per_mm", w)
        object.__setattr__(self, "phases_rad", p)
        object.__setattr__(self, "directions", d)
        object.__setattr__(self, "field_rms_mm", _non_negative(self.field_rms_mm,
                                                               "field_rms_mm"))
        b = float(self.breathing_mm)
        if not math.isfinite(b):
            raise InputError(f"must be finite, got {self.breathing_mm!r}", field="breathing_mm")
        object.__setattr__(self, "breathing_mm", b)
        object.__setattr__(self, "diaphragm_z_mm", float(self.diaphragm_z_mm))
        object.__setattr__(self, "breathing_width_mm",
                           _positive(self.breathing_width_mm, "breathing_width_mm"))

    # ------------------------------------------------------------------ evaluation
    @property
    def is_rigid(self) -> bool:
        """True when there is no deformation (random field and breathing both zero)."""
        return (self.field_rms_mm == 0 or len(self.wavevectors_per_mm) == 0) and \
            self.breathing_mm == 0

    def rotation_matrix(self) -> np.ndarray:
        """The 3×3 rotation ``R`` (ITK Euler3DTransform convention)."""
        return _euler_matrix(np.deg2rad(self.rotation_deg))

    def displacement_mm(self, points_mm) -> np.ndarray:
        """Deformation ``u(x)`` (mm) at LPS points ``(..., 3)`` of the repositioned frame."""
        x = np.asarray(points_mm, dtype=float)
        u = np.zeros_like(x)
        k = len(self.wavevectors_per_mm)
        if k and self.field_rms_mm > 0:
            arg = (x - self.centre_mm) @ self.wavevectors_per_mm.T + self.phases_rad  # (..., K)
            u += (self.field_rms_mm * math.sqrt(2.0 / k)) * (np.cos(arg) @ self.directions)
        if self.breathing_mm != 0:
            dz = (x[..., 2] - self.diaphragm_z_mm) / self.breathing_width_mm
            u[..., 2] += self.breathing_mm * np.exp(-0.5 * dz * dz)
        return u

    def transform_points(self, points_mm) -> np.ndarray:
        """``T(x)``: repositioned-frame points ``(..., 3)`` (mm) to reference-anatomy points."""
        x = np.asarray(points_mm, dtype=float)
        y = x + self.displacement_mm(x)
        return (y - self.centre_mm) @ self.rotation_matrix().T + self.centre_mm + \
            self.translation_mm

    # ------------------------------------------------------------------ SimpleITK
    def rigid_sitk(self):
        """The rigid part as a ``SimpleITK.Euler3DTransform``."""
        import SimpleITK as sitk

        t = sitk.Euler3DTransform()
        t.SetCenter(tuple(self.centre_mm))
        ax, ay, az = np.deg2rad(self.rotation_deg)
        t.SetRotation(float(ax), float(ay), float(az))
        t.SetTranslation(tuple(self.translation_mm))
        return t

    def to_sitk(self, reference: Geometry | Volume | None = None, *,
                field_spacing_mm: float = 8.0, margin_mm: float = 40.0):
        """The whole transform as a ``SimpleITK.CompositeTransform``.

        The deformation becomes a ``DisplacementFieldTransform`` sampled every
        ``field_spacing_mm`` on a grid covering ``reference`` plus ``margin_mm`` (linear
        interpolation of a field with 60 mm correlation: error ≲ 0.1 mm); it is applied first,
        then the rigid transform, as in :meth:`transform_points`.

        Raises
        ------
        InputError
            If the motion has a deformation and no ``reference`` grid is given.

        """
        import SimpleITK as sitk

        rigid = self.rigid_sitk()
        if self.is_rigid:
            return sitk.CompositeTransform([rigid])
        if reference is None:
            raise InputError("a deformable motion needs the reference grid to sample its "
                             "displacement field; pass a Geometry or Volume", field="reference")
        g = reference.geometry if isinstance(reference, Volume) else reference
        h = _positive(field_spacing_mm, "field_spacing_mm")
        corners = g.corners()
        lo = corners @ g.direction  # coordinates along the grid axes
        lo_min, lo_max = lo.min(axis=0) - margin_mm, lo.max(axis=0) + margin_mm
        n = np.ceil((lo_max - lo_min) / h).astype(int) + 1
        origin = g.direction @ lo_min
        fg = Geometry((int(n[2]), int(n[1]), int(n[0])), (h, h, h), tuple(origin), g.direction)
        u = self.displacement_mm(fg.voxel_centres())
        img = sitk.GetImageFromArray(u.astype(np.float64), isVector=True)
        img.SetOrigin(fg.origin_mm)
        img.SetSpacing(fg.spacing_mm)
        img.SetDirection(tuple(fg.direction.ravel()))
        dfield = sitk.DisplacementFieldTransform(img)
        # CompositeTransform applies its list last-to-first: the deformation, then the rigid.
        return sitk.CompositeTransform([rigid, dfield])

    # ------------------------------------------------------------------ truth
    def to_dict(self) -> dict:
        """JSON-serialisable parameters (the truth of the repositioning)."""
        return {
            "convention": _CONVENTION,
            "rotation_deg": self.rotation_deg.tolist(),
            "translation_mm": self.translation_mm.tolist(),
            "centre_mm": self.centre_mm.tolist(),
            "field_rms_mm": self.field_rms_mm,
            "wavevectors_per_mm": self.wavevectors_per_mm.tolist(),
            "phases_rad": self.phases_rad.tolist(),
            "directions": self.directions.tolist(),
            "breathing_mm": self.breathing_mm,
            "diaphragm_z_mm": self.diaphragm_z_mm,
            "breathing_width_mm": self.breathing_width_mm,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PatientMotion:
        """Inverse of :meth:`to_dict`."""
        keys = ("rotation_deg", "translation_mm", "centre_mm", "field_rms_mm",
                "wavevectors_per_mm", "phases_rad", "directions", "breathing_mm",
                "diaphragm_z_mm", "breathing_width_mm")
        missing = [k for k in keys if k not in d]
        if missing:
            raise InputError(f"missing keys {missing}", field=missing[0])
        return cls(**{k: d[k] for k in keys})


def random_transform(rng: np.random.Generator, *, centre_mm, max_rotation_deg: float = 3.0,
                     max_shift_mm: float = 10.0, deformation_mm: float = 5.0,
                     correlation_mm: float = 60.0, breathing_mm: float = 5.0,
                     diaphragm_z_mm: float | None = None, breathing_width_mm: float = 80.0,
                     n_modes: int = 24) -> PatientMotion:
    """Draw a patient repositioning: rigid (rotation + shift) and a smooth deformation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (same seed, same motion).
    centre_mm : (3,) array_like
        Centre of rotation (LPS mm), e.g. the centre of the body.
    max_rotation_deg : float
        Each Euler angle is drawn uniformly in ``[-max, max]`` degrees.
    max_shift_mm : float
        Each translation component is drawn uniformly in ``[-max, max]`` mm.
    deformation_mm : float
        RMS magnitude of the divergence-free random deformation field over draws (mm).
        0 disables it.
    correlation_mm : float
        Correlation length ``ℓ`` of the field (correlation ``exp(-r²/(2ℓ²))``), mm.
    breathing_mm : float
        The superior–inferior breathing displacement at the diaphragm is drawn uniformly in
        ``[-breathing_mm, breathing_mm]``. 0 disables it.
    diaphragm_z_mm : float, optional
        LPS z of the diaphragm dome; default ``centre_mm[2]``.
    breathing_width_mm : float
        Gaussian width of the breathing profile along z (mm).
    n_modes : int
        Number of random Fourier features ``K``.

    Returns
    -------
    PatientMotion

    Examples
    --------
    >>> import numpy as np
    >>> m = random_transform(np.random.default_rng(1), centre_mm=(0, 0, 0))
    >>> bool(np.all(np.abs(m.rotation_deg) <= 3.0))
    True

    """
    rng = _check_rng(rng)
    centre = _vec3(centre_mm, "centre_mm")
    max_rot = _non_negative(max_rotation_deg, "max_rotation_deg")
    max_shift = _non_negative(max_shift_mm, "max_shift_mm")
    deform = _non_negative(deformation_mm, "deformation_mm")
    ell = _positive(correlation_mm, "correlation_mm")
    breath = _non_negative(breathing_mm, "breathing_mm")
    if not (isinstance(n_modes, int | np.integer) and n_modes >= 1):
        raise InputError(f"must be an integer >= 1, got {n_modes!r}", field="n_modes")
    k = int(n_modes)
    rot = rng.uniform(-max_rot, max_rot, 3)
    shift = rng.uniform(-max_shift, max_shift, 3)
    omega = rng.normal(0.0, 1.0 / ell, (k, 3))
    phases = rng.uniform(0.0, 2.0 * math.pi, k)
    raw = rng.normal(0.0, 1.0, (k, 3))
    w_hat = omega / np.linalg.norm(omega, axis=1, keepdims=True)
    perp = raw - (raw * w_hat).sum(axis=1, keepdims=True) * w_hat  # remove the ω component
    directions = perp / np.linalg.norm(perp, axis=1, keepdims=True)
    b = float(rng.uniform(-breath, breath))
    zd = float(centre[2]) if diaphragm_z_mm is None else float(diaphragm_z_mm)
    return PatientMotion(rot, shift, centre, field_rms_mm=deform, wavevectors_per_mm=omega,
                         phases_rad=phases, directions=directions, breathing_mm=b,
                         diaphragm_z_mm=zd, breathing_width_mm=breathing_width_mm)


def _default_fill(volume: Volume) -> float:
    unit = volume.unit_info
    if unit.dimension == "ct_number":
        return -1024.0
    if unit.dimension == "mass_density":
        return 0.0012  # air, g/cm³
    return 0.0


def apply_to_volume(volume: Volume, motion: PatientMotion, *, fill: float | None = None,
                    reference: Geometry | Volume | None = None,
                    sitk_transform=None) -> Volume:
    """Warp a volume into the repositioned patient: ``out(x) = in(T(x))``.

    * label maps: nearest neighbour (values stay the input integers, names kept);
    * intensive images (HU, density, concentration, dose): linear interpolation;
    * extensive images (activity in MBq, counts, TIA): the concentration (value / voxel volume)
      is interpolated linearly, multiplied by the output voxel volume and renormalised so that
      the total inside the output grid equals the input total exactly. The renormalisation
      absorbs the Jacobian of the deformation (the random field is divergence-free, so its
      Jacobian is 1 + O(|∇u|²) ≈ 1 ± 0.01 with the defaults; the breathing term changes the
      volume near the diaphragm by up to ~ b/w ≈ 4%) and any activity that would leave the
      field of view (keep a margin).

    Parameters
    ----------
    volume : Volume or LabelMap
        Image in the reference position.
    motion : PatientMotion
        The repositioning (see :func:`random_transform`).
    fill : float, optional
        Value outside the input grid; default −1024 for HU, 0.0012 g/cm³ for density, else 0.
    reference : Geometry or Volume, optional
        Output grid; default the input grid.
    sitk_transform : SimpleITK.Transform, optional
        ``motion.to_sitk(reference)`` computed once by the caller, to warp several volumes of
        one acquisition without sampling the deformation field again.

    Returns
    -------
    Volume
        Same type, unit, modality and time; ``sigma`` is dropped; ``history`` gains a line.

    Raises
    ------
    InputError
        If an extensive image would lose all its content (moved out of the field of view).

    """
    import SimpleITK as sitk

    if not isinstance(motion, PatientMotion):
        raise InputError(f"must be a PatientMotion, got {type(motion).__name__}", field="motion")
    if not isinstance(volume, Volume):
        raise InputError(f"must be a Volume, got {type(volume).__name__}", field="volume")
    out_g = volume.geometry if reference is None else (
        reference.geometry if isinstance(reference, Volume) else reference)
    if not isinstance(out_g, Geometry):
        raise InputError(f"must be a Geometry or Volume, got {type(reference).__name__}",
                         field="reference")
    transform = motion.to_sitk(out_g) if sitk_transform is None else sitk_transform
    ref = sitk.Image(*out_g.size_xyz, sitk.sitkUInt8)
    ref.SetOrigin(out_g.origin_mm)
    ref.SetSpacing(out_g.spacing_mm)
    ref.SetDirection(tuple(out_g.direction.ravel()))
    conserves = volume.conserves
    fill_value = _default_fill(volume) if fill is None else float(fill)

    def warp(arr: np.ndarray, interp) -> np.ndarray:
        img = volume.replace(array=arr).to_sitk()
        res = sitk.Resample(img, ref, transform, interp, fill_value, img.GetPixelID())
        return sitk.GetArrayFromImage(res)

    how = f"rot {np.round(motion.rotation_deg, 3).tolist()} deg, shift " \
          f"{np.round(motion.translation_mm, 3).tolist()} mm" + \
          ("" if motion.is_rigid else ", deformation")
    if isinstance(volume, LabelMap) or conserves == "label":
        new = warp(volume.array, sitk.sitkNearestNeighbor).astype(volume.array.dtype)
        note = f"warped by patient motion ({how}), nearest neighbour"
    elif conserves == "total":
        v_in = volume.geometry.voxel_volume_ml
        conc = volume.array.astype(np.float64) / v_in
        new = warp(conc, sitk.sitkLinear) * out_g.voxel_volume_ml
        total_in = float(np.sum(volume.array, dtype=np.float64))
        total_out = float(np.sum(new, dtype=np.float64))
        if total_in != 0 and total_out == 0:
            raise InputError("the motion moves all of the image content out of the field of "
                             "view; check centre_mm and the shift", field="motion")
        scale = total_in / total_out if total_out != 0 else 1.0
        new = new * scale
        note = (f"warped by patient motion ({how}), concentration interpolated linearly and "
                f"renormalised to the input total (factor {scale:.6f})")
    else:
        new = warp(volume.array.astype(np.float32 if volume.array.dtype == np.float32
                                       else np.float64), sitk.sitkLinear)
        note = f"warped by patient motion ({how}), linear interpolation"
    return volume.replace(array=new, geometry=out_g, sigma=None, note=note)


def write_transform(motion: PatientMotion, path: str | Path, *,
                    reference: Geometry | Volume | None = None,
                    overwrite: bool = False) -> Path:
    """Write the motion for truth: ``.json`` (parameters) or ``.h5``/``.tfm`` (SimpleITK).

    ``.json`` holds :meth:`PatientMotion.to_dict` (exact, analytic). ``.h5`` holds the SimpleITK
    composite transform (the deformation sampled on ``reference``, see
    :meth:`PatientMotion.to_sitk`); ``.tfm`` (ITK text) only for rigid motions.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    InputError
        Unknown suffix, ``.tfm`` for a deformable motion, or a deformable ``.h5`` without
        ``reference``.

    """
    import SimpleITK as sitk

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".json", ".h5", ".tfm"):
        raise InputError(f"unknown transform file type {p.suffix!r}; accepted: .json, .h5, .tfm",
                         file=p, field="path")
    if suffix == ".tfm" and not motion.is_rigid:
        raise InputError("ITK .tfm text files cannot hold the deformation; use .h5 or .json",
                         file=p, field="path")
    transform = None if suffix == ".json" else motion.to_sitk(reference)
    with atomic_path(p, overwrite=overwrite) as tmp:
        if transform is None:
            tmp.write_text(json.dumps(motion.to_dict(), indent=2))
        else:
            sitk.WriteTransform(transform, str(tmp))
    return p
