"""Voxel S-value (VSV) kernel convolution engine, with density and heterogeneity corrections.

Dose in a homogeneous medium is the convolution of the TIA map with the voxel S-value kernel
(MIRD Pamphlet No. 17), done here by FFT (``scipy.fft.rfftn``, zero padding to a fast length,
so the convolution is linear: activity outside the image contributes nothing and energy leaving
the image is lost)::

    D_k(v) = Σ_s Ã(s) · K(v - s),   K = S × 3.6  [Gy per MBq·h; S in mGy/(MBq·s)].

**Density correction** (:mod:`theradose.dose._scaling`). The kernel holds the energy absorbed
per unit mass of the kernel's medium. By default the kernel is generated in two parts, charged
particles (electrons, alphas) and photons, each convolved and scaled by the physics of its
particle:

* charged particles, ``ρ ≥ ρ_c`` (tissue, lung, bone): ranges short against the voxel, same
  energy in another mass: ``D = D_k · ρ_kernel / ρ(v)`` (Dieudonné et al. 2013; Lee et al. 2018);
* charged particles, ``ρ < ρ_c`` (gas: air, trachea, bowel gas; ``ρ_c`` = 0.05 g/cm³, -950 HU):
  the voxel is a Bragg–Gray cavity crossed by the electrons of the surrounding medium, so
  ``D = D_k · s_air,kernel`` (stopping-power ratio ≈ 0.88), never ``× ρ_k/ρ ≈ 830``;
* photons: collision kerma, ``D = D_k · (μ_en/ρ)_voxel medium / (μ_en/ρ)_kernel medium``
  (≈ 1 in lung and soft tissue, 0.9 in air, > 1 in bone), independent of density
  (``photon_correction="kerma"``); ``"density"`` scales photons by ``ρ_k/ρ`` too (one combined
  kernel, as in Dieudonné et al.; 3.8× the Monte Carlo photon dose in lung).

Voxels of zero density receive no dose. ``density_correction=False`` uses ``D_k`` unscaled.

**Heterogeneity (multiple voxel S-values, Lee et al. 2018).** Voxels are split into tissue
classes (by density intervals, or by a material label map); one convolution of the whole TIA map
is done per class with that class's kernel, and each target voxel takes the result of its own
class, density-corrected with the class kernel's density.

**Uncertainty.** With independent voxel TIA errors σ_Ã the dose variance is exactly
``σ²_D(v) = f(v)² Σ_s σ²_Ã(s) K²(v - s) = f(v)² · (σ²_Ã * K²)(v)`` (``f`` the density
factor) for one kernel; the σ of a VOI
mean dose, whose voxel doses are correlated through the kernel, is computed exactly too:
``M·D̄ = Σ_s Ã(s) g(s)`` with ``g = Σ_p (h_p ⋆ K_p)``, ``h_p = m·f_p`` on the VOI's voxels of the
class of kernel part ``p`` (``f_p`` its density factor), so ``σ_D̄ = sqrt(Σ_s σ²_Ã(s) g²(s)) / M``.
With two kernel parts (charged, photon) the voxel variance is
``Σ_p Σ_q f_p f_q (σ²_Ã * K_p K_q)``.

References
----------
Bolch WE, Bouchet LG, Robertson JS, et al. MIRD Pamphlet No. 17: the dosimetry of nonuniform
activity distributions—radionuclide S values at the voxel level. J Nucl Med 1999;40(1):11S-36S.
Dieudonné A, Hobbs RF, Lebtahi R, et al. Study of the impact of tissue density heterogeneities
on 3-dimensional abdominal dosimetry: comparison between dose kernel convolution and direct
Monte Carlo methods. J Nucl Med 2013;54(2):236-243.
Lee MS, Kim JH, Paeng JC, et al. Whole-body voxel-based personalized dosimetry: the multiple
voxel S-value approach for heterogeneous media with nonuniform activity distributions. J Nucl
Med 2018;59(7):1133-1139.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import fft as sfft

from theradose.dose._engine import (
    DoseEngine,
    PreparedInputs,
    check_fft_options,
    dose_volume,
    prepare_inputs,
)
from theradose.dose._media import get_medium
from theradose.dose._result import DoseResult, summarise_vois
from theradose.dose._scaling import (
    DEFAULT_CAVITY_DENSITY_G_CM3,
    PHOTON_RULES,
    DensityScaling,
    check_cavity_density,
    density_scaling,
)
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.errors import GeometryMismatchError, InputError
from theradose.nuclides import Nuclide, data_source, get_nuclide
from theradose.volume import LabelMap, Volume

__all__ = [
    "DEFAULT_DENSITY_CLASSES",
    "DEFAULT_MATERIAL_MEDIA",
    "GY_PER_MBQH_PER_S_UNIT",
    "FFTConvolver",
    "KernelConvolutionEngine",
    "resolve_kernel",
]

#: mGy/(MBq·s) → Gy per MBq·h: 1e-3 Gy/mGy × 3600 s/h.
GY_PER_MBQH_PER_S_UNIT = 3.6

#: Density intervals (g/cm³, [lo, hi)) of the tissue classes used by ``heterogeneity=True``:
#: the boundaries are the midpoints between the nominal densities of lung (0.26), soft tissue
#: (1.0) and cortical bone (1.85) of :data:`theradose.dose.MEDIA` (a theradose choice; Lee et al.
#: 2018 classify lung, soft tissue and bone the same way).
DEFAULT_DENSITY_CLASSES: dict[str, tuple[float, float]] = {
    "lung": (0.0, 0.63),
    "soft_tissue": (0.63, 1.425),
    "cortical_bone": (1.425, math.inf),
}

#: Medium used for each class of :data:`theradose.materials.DEFAULT_MATERIAL_CLASSES` when a
#: material label map is given. Air (outside the body, airways, bowel gas) uses the lung kernel
#: (a kernel at air density would span metres; below the cavity threshold the voxel takes the
#: Bragg–Gray dose s_air,lung × the lung-kernel dose, :mod:`theradose.dose._scaling`); spongiosa
#: (trabecular bone with marrow, 1.1-1.2 g/cm³) the soft-tissue kernel density-corrected; metal
#: the bone kernel.
DEFAULT_MATERIAL_MEDIA: dict[str, str] = {
    "air": "lung", "lung": "lung", "adipose": "adipose", "soft_tissue": "soft_tissue",
    "spongiosa": "soft_tissue", "cortical_bone": "cortical_bone", "metal": "cortical_bone",
}


class FFTConvolver:
    """Linear ("same"-size) 3-D convolution of images of one shape with odd-sized kernels.

    The image and kernel are zero-padded to ``next_fast_len(n + k // 2)`` per axis (enough for
    the cropped result to equal the linear convolution), transformed with ``scipy.fft``,
    multiplied and transformed back; the result is cropped so that the kernel's centre element
    maps a voxel onto itself. Kernel transforms and the inverse are done one axis at a time,
    skipping the all-zero rows.

    Parameters
    ----------
    shape : (3,) tuple of int
        Image shape ``(Z, Y, X)``.
    kernel_shape : (3,) tuple of int
        Largest kernel shape (odd sizes); smaller kernels are zero-padded.
    dtype : {"float32", "float64"}
        Working precision (float32: relative error ~1e-6 of the largest value, twice as fast).
    workers : int
        Threads for scipy.fft.
    """

    def __init__(self, shape: Sequence[int], kernel_shape: Sequence[int], *,
                 dtype: str = "float32", workers: int = 2) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.kernel_shape = tuple(int(k) for k in kernel_shape)
        self.dtype = np.dtype(dtype)
        self.workers = int(workers)
        # Circular convolution of length L equals the linear one on the cropped output as soon
        # as L >= n + k//2 (the wrapped tail of the full result then misses the crop window).
        self.fshape = tuple(sfft.next_fast_len(max(n + k // 2, k), real=True)
                            for n, k in zip(self.shape, self.kernel_shape, strict=True))
        half = [k // 2 for k in self.kernel_shape]
        self._crop = tuple(slice(h, h + n) for h, n in zip(half, self.shape, strict=True))

    def _forward(self, a: np.ndarray) -> np.ndarray:
        """Zero-padded 3-D real FFT, one axis at a time so the padding is never transformed.

        Same numbers as ``rfftn(a, s=fshape)``: r2c along x on the unpadded rows, c2c along y
        on the unpadded z-planes, then c2c along z on the full grid.
        """
        fz, fy, fx = self.fshape
        x = sfft.rfft(np.asarray(a, dtype=self.dtype), n=fx, axis=2, workers=self.workers)
        x = sfft.fft(x, n=fy, axis=1, workers=self.workers, overwrite_x=True)
        return sfft.fft(x, n=fz, axis=0, workers=self.workers, overwrite_x=True)

    def transform(self, image: np.ndarray) -> np.ndarray:
        """Forward transform of an image of :attr:`shape` (zero-padded)."""
        return sfft.rfftn(np.asarray(image, dtype=self.dtype), s=self.fshape,
                          workers=self.workers)

    def kernel_transform(self, kernel: np.ndarray, *, flip: bool = False) -> np.ndarray:
        """Transform of a kernel placed so that its centre is the origin of the padded grid.

        The kernel is embedded at the top-left corner of a :attr:`kernel_shape` box (centred
        when smaller) so that the crop of :meth:`apply` is the same for every kernel.
        ``flip`` reverses all axes (correlation instead of convolution).
        """
        k = np.asarray(kernel)
        if flip:
            k = k[::-1, ::-1, ::-1]
        if k.shape != self.kernel_shape:
            if any(a > b for a, b in zip(k.shape, self.kernel_shape, strict=True)):
                raise InputError(f"kernel shape {k.shape} exceeds the convolver's "
                                 f"{self.kernel_shape}", field="kernel")
            box = np.zeros(self.kernel_shape)
            off = [(b - a) // 2 for a, b in zip(k.shape, self.kernel_shape, strict=True)]
            box[off[0]:off[0] + k.shape[0], off[1]:off[1] + k.shape[1],
                off[2]:off[2] + k.shape[2]] = k
            k = box
        return self._forward(k)

    def apply(self, image_ft: np.ndarray, kernel_ft: np.ndarray) -> np.ndarray:
        """Inverse transform of the product, cropped to :attr:`shape` (working precision).

        One axis at a time, cropping after each so that only needed rows are transformed.
        """
        fz, fy, fx = self.fshape
        cz, cy, cx = self._crop
        x = np.multiply(image_ft, kernel_ft)
        x = sfft.ifft(x, n=fz, axis=0, workers=self.workers, overwrite_x=True)[cz]
        x = sfft.ifft(x, n=fy, axis=1, workers=self.workers, overwrite_x=True)[:, cy]
        return sfft.irfft(x, n=fx, axis=2, workers=self.workers)[:, :, cx]

    def convolve(self, image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """``(image * kernel)`` cropped to the image ("same" linear convolution)."""
        return self.apply(self.transform(image), self.kernel_transform(kernel))


def resolve_kernel(kernel: VoxelKernel | None, nuclide: Nuclide, spacing_mm: Sequence[float],
                   medium: str, classes: Sequence[str] | None = None, *,
                   field: str = "kernel",
                   options: Mapping[str, Any] | None = None) -> VoxelKernel:
    """Check a given kernel against the image, or generate one for the image voxel size.

    Parameters
    ----------
    kernel : VoxelKernel or None
        None: generate with :func:`theradose.dose._vsv.voxel_s_values` (cached on disk there).
    nuclide : Nuclide
    spacing_mm : (3,) float
        Image voxel size (x, y, z), mm.
    medium : str
        Medium of the generated kernel.
    classes : sequence of str, optional
        Emission classes of the generated kernel (None: the generator's default).
    field : str
        Argument named in error messages.
    options : mapping, optional
        Further keyword arguments of ``voxel_s_values`` (``n_samples``, ``radius_mm``, ...).

    Raises
    ------
    GeometryMismatchError
        If the kernel's voxel size differs from the image's by more than 0.1 %.
    InputError
        If the kernel is for another nuclide, or is not a VoxelKernel.
    """
    if kernel is None:
        from theradose.dose import _vsv

        gen = getattr(_vsv, "voxel_s_values", None)
        if gen is None:  # pragma: no cover - only while the generator is being written
            raise InputError("no kernel given and theradose.dose._vsv.voxel_s_values is not "
                             "available; pass a VoxelKernel", field=field)
        opts: dict[str, Any] = {**dict(options or {}), "medium": medium}
        if classes is not None:
            opts["classes"] = tuple(classes)
        kernel = gen(nuclide.name, tuple(spacing_mm), **opts)
    if not isinstance(kernel, VoxelKernel):
        raise InputError(f"expected a VoxelKernel, got {type(kernel).__name__}", field=field)
    if not np.allclose(kernel.voxel_mm, spacing_mm, rtol=1e-3, atol=0):
        raise GeometryMismatchError(
            f"kernel voxel size {tuple(round(v, 4) for v in kernel.voxel_mm)} mm (x, y, z) differs "
            f"from the image spacing {tuple(round(v, 4) for v in spacing_mm)} mm; pass a kernel "
            "for this spacing or kernel=None to generate one", field=f"{field}.voxel_mm")
    try:
        kname = get_nuclide(kernel.nuclide, field=f"{field}.nuclide").name
    except InputError:
        kname = str(kernel.nuclide)
    if kname != nuclide.name:
        raise InputError(f"kernel is for {kernel.nuclide!r}, the TIA for {nuclide.name!r}",
                         field=f"{field}.nuclide")
    return kernel


def _kernel_summary(k: VoxelKernel) -> dict[str, Any]:
    return {"nuclide": k.nuclide, "medium": k.medium, "density_g_cm3": k.density_g_cm3,
            "classes": list(k.classes), "voxel_mm": list(k.voxel_mm),
            "shape_zyx": list(k.values.shape), "emitted_kev": k.emitted_kev,
            "energy_fraction": k.energy_fraction, "provenance": dict(k.provenance)}


def _check_classes(mapping: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for name, iv in mapping.items():
        med = get_medium(name).name
        try:
            lo, hi = (float(x) for x in iv)
        except (TypeError, ValueError):
            raise InputError(f"expected a density interval (lo, hi) in g/cm3 for {name!r}, got "
                             f"{iv!r}", field=f"heterogeneity.{name}") from None
        if not (lo >= 0 and hi > lo) or math.isnan(lo):
            raise InputError(f"density interval of {name!r} must satisfy 0 <= lo < hi, got "
                             f"({lo}, {hi})", field=f"heterogeneity.{name}")
        out[med] = (lo, hi)
    ivs = sorted(out.values())
    for (_, h1), (l2, _) in itertools.pairwise(ivs):
        if l2 < h1:
            raise InputError(f"density intervals overlap: {sorted(out.items())}",
                             field="heterogeneity")
    return out


class KernelConvolutionEngine(DoseEngine):
    """Absorbed dose by FFT convolution of the TIA map with voxel S-value kernels.

    Parameters
    ----------
    medium : str
        Medium of the (base) kernel, a :data:`theradose.dose.MEDIA` name.
    kernel : VoxelKernel, optional
        Kernel to use; its voxel size must equal the image's. None: generated for the image
        voxel size by :func:`theradose.dose._vsv.voxel_s_values` (cached on disk there).
    classes : sequence of {"electron", "photon", "alpha"}
        Emission classes of generated kernels (those the nuclide does not emit are skipped).
    density_correction : bool
        Scale each voxel's dose from the kernel medium to its own material (module docstring;
        :mod:`theradose.dose._scaling`). False: ``D_k`` unscaled.
    cavity_density_g_cm3 : float or None
        Gas threshold ρ_c, g/cm³ (default 0.05, -950 HU): below it a voxel is a Bragg–Gray
        cavity (charged-particle dose ``D_k × s_air,kernel``) instead of ``D_k × ρ_k/ρ``. None
        applies ``ρ_k/ρ`` down to any density (the former behaviour: ~830× in air; not
        recommended).
    photon_correction : {"kerma", "density"}
        ``"kerma"`` (default): generated kernels are split into a charged-particle and a
        photon part, photons scaled by the collision-kerma ratio of the voxel's medium.
        ``"density"``: one combined kernel scaled by ``ρ_k/ρ`` (given kernels are always used
        as they are, scaled by the rule of their classes: photon-only kernels as photons).
    heterogeneity : bool or mapping
        False: one kernel. True: multiple VSVs by the :data:`DEFAULT_DENSITY_CLASSES`. A mapping
        ``{medium: (lo, hi)}`` gives the density intervals (g/cm³, ``[lo, hi)``, not
        overlapping); voxels in no interval use ``medium``. The string ``"materials"`` uses the
        ``materials`` label map passed to :meth:`compute` (names mapped to media by
        ``material_media``).
    kernels : mapping of str to VoxelKernel, optional
        Kernels per medium for the heterogeneity classes (generated when missing).
    vsv_options : mapping, optional
        Keyword arguments passed to ``voxel_s_values`` when generating (``n_samples``,
        ``radius_mm``, ``cache_dir``, ...).
    materials : LabelMap, optional
        Default material map for ``heterogeneity="materials"`` (so that a pipeline config can
        carry it); :meth:`compute`'s ``materials`` overrides it.
    material_media : mapping of str to str, optional
        Material-class name → medium (default :data:`DEFAULT_MATERIAL_MEDIA`).
    voi_sigma : {"exact", "independent"}
        How the σ of VOI means is computed: exactly (one extra convolution per VOI and class)
        or treating voxel doses as independent (a lower bound).
    precision : {"float32", "float64"}
        FFT working precision.
    workers : int
        FFT threads.

    Examples
    --------
    >>> eng = KernelConvolutionEngine(medium="water", density_correction=True)
    >>> eng.name
    'kernel'
    """

    name = "kernel"

    def __init__(self, medium: str = "water", kernel: VoxelKernel | None = None, *,
                 classes: Sequence[str] = ("electron", "photon", "alpha"),
                 density_correction: bool = True,
                 cavity_density_g_cm3: float | None = DEFAULT_CAVITY_DENSITY_G_CM3,
                 photon_correction: str = "kerma",
                 heterogeneity: bool | str | Mapping[str, Sequence[float]] = False,
                 kernels: Mapping[str, VoxelKernel] | None = None,
                 material_media: Mapping[str, str] | None = None,
                 vsv_options: Mapping[str, Any] | None = None,
                 materials: LabelMap | None = None,
                 voi_sigma: str = "exact", precision: str = "float32", workers: int = 2) -> None:
        self.medium = get_medium(medium).name
        if kernel is not None and not isinstance(kernel, VoxelKernel):
            raise InputError(f"expected a VoxelKernel or None, got {type(kernel).__name__}",
                             field="kernel")
        self.kernel = kernel
        cl = (classes,) if isinstance(classes, str) else tuple(classes)
        if not cl or any(c not in ("electron", "photon", "alpha") for c in cl):
            raise InputError(f"classes must be values of ['electron', 'photon', 'alpha'], got "
                             f"{list(cl)}", field="classes")
        self.emission_classes = cl
        if vsv_options is not None and not isinstance(vsv_options, Mapping):
            raise InputError(f"expected a mapping of voxel_s_values options, got "
                             f"{vsv_options!r}", field="vsv_options")
        self.vsv_options = dict(vsv_options or {})
        self.materials = materials
        self.density_correction = bool(density_correction)
        self.cavity_density_g_cm3 = check_cavity_density(cavity_density_g_cm3)
        if photon_correction not in PHOTON_RULES:
            raise InputError(f"unknown photon_correction {photon_correction!r}; accepted: "
                             f"{list(PHOTON_RULES)}", field="photon_correction")
        self.photon_correction = photon_correction
        if isinstance(heterogeneity, str):
            if heterogeneity != "materials":
                raise InputError(f"unknown heterogeneity mode {heterogeneity!r}; accepted: "
                                 "False, True, 'materials' or {medium: (lo, hi)}",
                                 field="heterogeneity")
            self.classes: dict[str, tuple[float, float]] | str | None = "materials"
        elif isinstance(heterogeneity, Mapping):
            if not heterogeneity:
                raise InputError("heterogeneity mapping is empty; give {medium: (lo, hi)}",
                                 field="heterogeneity")
            self.classes = _check_classes(heterogeneity)
        elif heterogeneity is True:
            self.classes = dict(DEFAULT_DENSITY_CLASSES)
        elif heterogeneity is False or heterogeneity is None:
            self.classes = None
        else:
            raise InputError(f"expected a bool, 'materials' or a mapping, got {heterogeneity!r}",
                             field="heterogeneity")
        self.kernels = {get_medium(k).name: v for k, v in (kernels or {}).items()}
        self.material_media = {**DEFAULT_MATERIAL_MEDIA, **dict(material_media or {})}
        for mat, med in self.material_media.items():
            if not isinstance(med, str):
                raise InputError(f"expected a medium name for material {mat!r}, got {med!r}",
                                 field=f"material_media.{mat}")
            get_medium(med)
        if voi_sigma not in ("exact", "independent"):
            raise InputError(f"unknown voi_sigma {voi_sigma!r}; accepted: 'exact', "
                             "'independent'", field="voi_sigma")
        self.voi_sigma = voi_sigma
        self.precision, self.workers = check_fft_options(precision, workers)
        self._generated: dict[tuple[Any, ...], VoxelKernel] = {}
        self._scalings: dict[tuple[Any, ...], DensityScaling] = {}

    def options(self) -> dict[str, Any]:
        """Constructor options (kernels summarised)."""
        return {"medium": self.medium, "kernel": None if self.kernel is None else "given",
                "classes": list(self.emission_classes), "vsv_options": self.vsv_options,
                "density_correction": self.density_correction,
                "cavity_density_g_cm3": self.cavity_density_g_cm3,
                "photon_correction": self.photon_correction,
                "heterogeneity": self.classes if self.classes is not None else False,
                "voi_sigma": self.voi_sigma, "precision": self.precision,
                "workers": self.workers}

    # ------------------------------------------------------------------ class maps
    def _class_masks(self, inp: PreparedInputs, materials: LabelMap | None
                     ) -> list[tuple[str, np.ndarray | None]]:
        """[(medium, mask or None for "everywhere")] covering every voxel once."""
        if self.classes is None:
            return [(self.medium, None)]
        if self.classes == "materials":
            if materials is None:
                raise InputError("heterogeneity='materials' needs a materials LabelMap "
                                 "(theradose.materials.hu_to_material)", field="materials")
            if not isinstance(materials, LabelMap):
                raise InputError(f"expected a LabelMap, got {type(materials).__name__}",
                                 field="materials")
            try:
                inp.tia.geometry.require_same(materials.geometry, what="tia and materials")
            except GeometryMismatchError as exc:
                raise GeometryMismatchError(exc.detail, field=f"materials.{exc.field}") from None
            per: dict[str, np.ndarray] = {}
            covered = np.zeros(inp.tia.shape, bool)
            for value, name in materials.names.items():
                if name not in self.material_media:
                    raise InputError(f"material {name!r} has no medium; known: "
                                     f"{sorted(self.material_media)}; pass material_media",
                                     field="material_media")
                med = get_medium(self.material_media[name]).name
                m = materials.array == value
                per[med] = per.get(med, np.zeros_like(m)) | m
                covered |= m
            rest = ~covered
            if rest.any():
                per[self.medium] = per.get(self.medium, np.zeros_like(rest)) | rest
            return [(k, v) for k, v in per.items() if v.any()]
        out: list[tuple[str, np.ndarray | None]] = []
        covered = np.zeros(inp.tia.shape, bool)
        for med, (lo, hi) in self.classes.items():  # type: ignore[union-attr]
            m = (inp.density >= lo) & (inp.density < hi)
            covered |= m
            if m.any():
                out.append((med, m))
        rest = ~covered
        if rest.any():
            merged = [i for i, (med, _) in enumerate(out) if med == self.medium]
            if merged:
                i = merged[0]
                out[i] = (self.medium, out[i][1] | rest)  # type: ignore[operator]
            else:
                out.append((self.medium, rest))
        if len(out) == 1:
            return [(out[0][0], None)]
        return out

    def _class_groups(self, nuclide: Nuclide) -> list[tuple[str, ...]]:
        """Emission classes of the generated kernel parts: charged + photon, or all in one."""
        cl = self.emission_classes
        if self.photon_correction != "kerma" or "photon" not in cl:
            return [cl]
        e = nuclide.energy_per_decay_kev
        charged = tuple(c for c in cl if c != "photon")
        groups = [charged] if sum(getattr(e, c) for c in charged) > 0 else []
        if e.photon > 0:
            groups.append(("photon",))
        return groups or [cl]

    def _parts_for(self, medium: str, inp: PreparedInputs) -> list[VoxelKernel]:
        """Kernels convolved for the voxels of ``medium`` (given, or generated per part)."""
        if self.kernel is not None and (medium == self.medium or self.classes is None):
            return [resolve_kernel(self.kernel, inp.nuclide, inp.spacing_mm, medium)]
        if medium in self.kernels:
            return [resolve_kernel(self.kernels[medium], inp.nuclide, inp.spacing_mm, medium,
                                   field=f"kernels.{medium}")]
        out = []
        for cl in self._class_groups(inp.nuclide):
            key = (medium, inp.nuclide.name, tuple(round(v, 6) for v in inp.spacing_mm), cl)
            if key not in self._generated:  # reuse for the next image of the same spacing
                self._generated[key] = resolve_kernel(None, inp.nuclide, inp.spacing_mm,
                                                      medium, cl, options=self.vsv_options)
            out.append(self._generated[key])
        return out

    def _factor(self, inp: PreparedInputs, k: VoxelKernel, dtype: Any) -> np.ndarray | None:
        """Density factor map of kernel ``k`` (None without density correction)."""
        if not self.density_correction:
            return None
        key = (inp.nuclide.name, k.medium, float(k.density_g_cm3))
        if key not in self._scalings:
            self._scalings[key] = density_scaling(
                inp.nuclide, k.medium, k.density_g_cm3,
                cavity_density_g_cm3=self.cavity_density_g_cm3,
                photon_rule=self.photon_correction)
        return self._scalings[key].factor(inp.density, kernel_part(k), dtype)

    # ------------------------------------------------------------------ compute
    def compute(self, tia: Volume, density: Volume | float, nuclide: str | Nuclide, *,
                labels: LabelMap | None = None, tia_sigma: Volume | None = None,
                materials: LabelMap | None = None) -> DoseResult:
        """Absorbed dose by kernel convolution (see :meth:`DoseEngine.compute`).

        Parameters
        ----------
        materials : LabelMap, optional
            Material classes on the TIA grid (for ``heterogeneity="materials"``).

        Returns
        -------
        DoseResult
            ``dose`` and ``sigma`` in Gy; ``provenance["kernels"]`` describes each kernel used.
        """
        inp = prepare_inputs(tia, density, nuclide, labels=labels, tia_sigma=tia_sigma)
        classes = self._class_masks(inp, materials if materials is not None
                                    else self.materials)
        groups = [(mask, self._parts_for(med, inp)) for med, mask in classes]
        kshape = tuple(max(k.values.shape[a] for _, ks in groups for k in ks) for a in range(3))
        conv = FFTConvolver(inp.tia.shape, kshape, dtype=self.precision, workers=self.workers)
        a_ft = conv.transform(inp.tia_mbqh)
        s_ft = None if inp.sigma_mbqh is None else conv.transform(inp.sigma_mbqh ** 2)
        dose: np.ndarray | None = None
        var: np.ndarray | None = None
        for mask, ks in groups:
            d, v = self._group_dose(inp, conv, a_ft, s_ft, ks)
            if mask is None:  # one class covering the image
                dose, var = d, v
                continue
            if dose is None:
                dose = np.zeros(inp.tia.shape, conv.dtype)
                var = None if v is None else np.zeros(inp.tia.shape, conv.dtype)
            dose[mask] = d[mask]
            if var is not None and v is not None:
                var[mask] = v[mask]
        assert dose is not None
        voi_sig = None
        if labels is not None and inp.sigma_mbqh is not None and self.voi_sigma == "exact":
            voi_sig = self._voi_sigma(inp, conv, groups)
        sigma = np.zeros(dose.shape, conv.dtype) if var is None else np.sqrt(var)
        voi = () if labels is None else summarise_vois(dose, sigma, inp.mass_g, labels,
                                                          voi_sigma=voi_sig)
        prov = self._provenance(inp, conv, groups)
        return DoseResult(dose=dose_volume(inp, dose, self.name),
                          sigma=dose_volume(inp, sigma, self.name, sigma=True), voi=voi,
                          engine=self.name, provenance=prov)

    def _group_dose(self, inp: PreparedInputs, conv: FFTConvolver, a_ft: np.ndarray,
                    s_ft: np.ndarray | None, kernels: Sequence[VoxelKernel]
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Dose and variance maps of one tissue class: ``Σ_p f_p·(Ã * K_p)`` (module doc)."""
        dt = conv.dtype
        terms = []
        dose = None
        for k in kernels:
            kgy = k.values * GY_PER_MBQH_PER_S_UNIT
            f = self._factor(inp, k, dt)
            d = conv.apply(a_ft, conv.kernel_transform(kgy))
            if f is not None:
                d *= f
            dose = d if dose is None else dose + d
            terms.append((kgy, f))
        assert dose is not None
        if s_ft is None:
            return dose, None
        var = np.zeros(dose.shape, dt)
        for i, (ki, fi) in enumerate(terms):
            for j in range(i, len(terms)):
                kj, fj = terms[j]
                prod = _kernel_product(ki, kj)
                if not prod.any():
                    continue
                c = conv.apply(s_ft, conv.kernel_transform(prod))
                if fi is not None and fj is not None:
                    c *= fi * fj
                var += c if i == j else 2.0 * c
        return dose, np.maximum(var, 0.0)

    def _provenance(self, inp: PreparedInputs, conv: FFTConvolver,
                    groups: Sequence[tuple[np.ndarray | None, Sequence[VoxelKernel]]]
                    ) -> dict[str, Any]:
        n_kernels = sum(len(ks) for _, ks in groups)
        scal = {f"{k.medium}@{k.density_g_cm3:g}":
                self._scalings[(inp.nuclide.name, k.medium, float(k.density_g_cm3))].describe()
                for _, ks in groups for k in ks} if self.density_correction else None
        rc = self.cavity_density_g_cm3
        return {
            "method": "voxel S-value convolution (FFT, MIRD 17)"
                      + (", density-corrected" if self.density_correction else "")
                      + (f", gas (rho < {rc} g/cm3) as Bragg-Gray cavity"
                         if self.density_correction and rc is not None else "")
                      + (", photons by kerma ratio" if self.density_correction and
                         self.photon_correction == "kerma" and n_kernels > len(groups) else "")
                      + (", multiple VSVs by tissue class (Lee 2018)" if len(groups) > 1
                         or self.classes is not None else ""),
            "engine": self.name, "nuclide": inp.nuclide.name,
            "nuclear_data": data_source(),
            "kernels": [{**_kernel_summary(k), "part": kernel_part(k),
                         "voxels": int(inp.tia_mbqh.size if m is None else m.sum())}
                        for m, ks in groups for k in ks],
            "density_scaling": scal,
            "gas_voxels": (int(np.sum((inp.density > 0) & (inp.density < rc)))
                           if rc is not None else 0),
            "options": self.options(),
            "fft": {"library": f"scipy.fft {_version('scipy')}", "shape": list(conv.fshape),
                    "precision": self.precision},
            "uncertainty": "independent voxel TIA errors, exact propagation "
                           "(σ²_D = Σ_pq f_p f_q (σ²_TIA * K_p K_q); VOI σ "
                           + self.voi_sigma + ")",
            "references": ["MIRD Pamphlet 17, J Nucl Med 1999;40:11S-36S",
                           "Dieudonne et al. J Nucl Med 2013;54:236-243",
                           "Lee et al. J Nucl Med 2018;59:1133-1139",
                           "Spencer & Attix, Radiat Res 1955;3:239-254 (cavity theory)"],
            "theradose_version": _version("theradose"),
        }

    def _voi_sigma(self, inp: PreparedInputs, conv: FFTConvolver,
                   groups: Sequence[tuple[np.ndarray | None, Sequence[VoxelKernel]]]
                   ) -> dict[int, float]:
        """Exact σ of each VOI's mass-weighted mean dose (module docstring)."""
        assert inp.labels is not None and inp.sigma_mbqh is not None
        s2 = inp.sigma_mbqh ** 2
        mass_g = inp.mass_g
        weights = []
        for mask, ks in groups:
            for k in ks:
                f = self._factor(inp, k, np.float64)
                weights.append((mask, k, mass_g if f is None else mass_g * f))
        out: dict[int, float] = {}
        for value in inp.labels.names:
            voi = inp.labels.array == value
            mass = float(mass_g[voi].sum())
            if mass <= 0:
                continue
            g = np.zeros(inp.tia.shape)
            for mask, k, w in weights:
                h = np.where(voi if mask is None else voi & mask, w, 0.0)
                if not h.any():
                    continue
                g += conv.convolve(h, np.ascontiguousarray(
                    (k.values * GY_PER_MBQH_PER_S_UNIT)[::-1, ::-1, ::-1]))
            out[int(value)] = float(np.sqrt(np.sum(s2 * g * g)) / mass)
        return out


def kernel_part(k: VoxelKernel) -> str:
    """``"photon"`` for a photon-only kernel, else ``"charged"`` (its density-scaling rule)."""
    return "photon" if tuple(k.classes) == ("photon",) else "charged"


def _kernel_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise product of two centred odd-sized kernels (on the larger box)."""
    shape = tuple(max(x, y) for x, y in zip(a.shape, b.shape, strict=True))
    return _centred(a, shape) * _centred(b, shape)


def _centred(k: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    if k.shape == tuple(shape):
        return k
    out = np.zeros(shape)
    off = [(n - m) // 2 for m, n in zip(k.shape, shape, strict=True)]
    out[off[0]:off[0] + k.shape[0], off[1]:off[1] + k.shape[1],
        off[2]:off[2] + k.shape[2]] = k
    return out


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
