"""Local alignment of compact VOIs in the GTM: a translation per VOI and time point.

CT-based registration of serial SPECT/CT leaves a residual misalignment of a few mm at a
lesion: the patient does not move rigidly (breathing, organ shift, bladder filling) and a
lesion of a few mL has no CT contrast of its own. For a VOI of 2-5 mL a 5 mm misalignment
costs a third of its counts in a GTM, a loss no later step can recover. Lesions are, however,
compact and hot on the emission image itself, so their position at each time point can be
measured there.

:func:`fit_local_shifts` does this with the GTM's own image model. In a window of ``window_mm``
around the VOI the image is modelled as ``Σ_i c_i (G * S_i)``: the regional spread functions
(sources blurred by the Gaussian PSF, :func:`theradose.segmentation.gtm_matrix`) of the VOI,
translated by ``s``, and of every other source in the window, where they are. For each ``s``
the concentrations ``c`` follow by linear least squares; ``s`` minimises the residual sum of
squares (Powell's method within ``±max_shift_mm`` per axis). This is a model-based registration
of the VOI to the image (the regional spread function plays the role of the template); it
uses all counts of the window, needs no threshold and returns sub-voxel shifts (translated
spread functions are interpolated linearly, exact to well under a voxel for a PSF wider than a
voxel). A fit is kept only when the VOI is hotter than the background in the fitted model and
the shift is inside the search range; otherwise the VOI stays where the registration put it,
and the reason is recorded.

:func:`shifted_voi_totals` then solves the GTM of every image with its VOIs translated: the
translated VOI's source and ROI (linear interpolation, fractional occupancy) replace the other
sources and ROIs where they overlap, and the part it vacates joins the background, so the
regions still partition the image. Only a box around each moved VOI changes, so the transfer
matrix is updated there instead of recomputed (exact: a change ``ΔS`` of a source changes its
spread function only within the Gaussian's truncation radius).

Local, VOI-by-VOI registration is the usual remedy for serial SPECT where a global
registration cannot align small structures (see the discussions of image registration in MIRD
Pamphlet 23, Dewaraja et al. 2012, and in Ljungberg and Sjögreen Gleisner 2016); here it is
done inside the partial-volume model rather than by resampling the image again (each
resampling of an emission image blurs it a little more, which the GTM, knowing only the
camera's FWHM, would read as lost counts).

References
----------
O. G. Rousset, Y. Ma, A. C. Evans, J. Nucl. Med. 39 (1998) 904-911 (GTM).
Y. K. Dewaraja et al., "MIRD Pamphlet No. 23", J. Nucl. Med. 53 (2012) 1310-1325,
doi:10.2967/jnumed.111.100123.
M. Ljungberg, K. Sjögreen Gleisner, "Personalized dosimetry for radionuclide therapy using
molecular imaging tools", Biomedicines 4 (2016) 25, doi:10.3390/biomedicines4040025.
M. J. D. Powell, "An efficient method for finding the minimum of a function of several
variables without calculating derivatives", Comput. J. 7 (1964) 155-162.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage, optimize

from theradose.errors import InputError
from theradose.segmentation._gtm import COND_MAX, FWHM_PER_SIGMA, gtm_matrix
from theradose.segmentation._gtm_regions import BACKGROUND, GTMRegions, _bbox, _zyx_spacing

__all__ = ["LocalShifts", "fit_local_shifts", "shifted_voi_totals"]

_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default: kernel radius int(4 σ + 0.5)
_SWEEPS = 4  # at most this many passes over VOIs that see each other
_SWEEP_TOL_MM = 0.1  # a VOI whose shift changed less than this does not trigger another pass


@dataclass(frozen=True)
class LocalShifts:
    """Per-VOI, per-image translations from :func:`fit_local_shifts`.

    Attributes
    ----------
    shifts_mm : dict of str to (T, 3) ndarray
        Translation of each VOI in each image, mm along the grid axes ``(x, y, z)`` (LPS for
        an identity direction): where the VOI is in the image relative to where it is drawn.
        Zero where the fit was not kept.
    fitted_mm : dict of str to (T, 3) ndarray
        The fitted translations, kept or not.
    accepted : dict of str to (T,) bool ndarray
        Whether each fit was kept.
    notes : dict of str to list of str
        Why a fit was not kept ("" when it was).
    rms_ratio : dict of str to (T,) ndarray
        RMS residual of the window model with the fitted translation over that without (< 1:
        the translation explains the image better).
    settings : dict
        ``fwhm_mm``, ``window_mm``, ``max_shift_mm``, ``method``.
    """

    shifts_mm: dict[str, np.ndarray]
    fitted_mm: dict[str, np.ndarray]
    accepted: dict[str, np.ndarray]
    notes: dict[str, list[str]]
    rms_ratio: dict[str, np.ndarray]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record: per VOI, per image shift, kept flag and note."""
        return {"settings": dict(self.settings),
                "vois": {n: {"shift_mm": np.round(self.shifts_mm[n], 3).tolist(),
                             "fitted_mm": np.round(self.fitted_mm[n], 3).tolist(),
                             "accepted": [bool(a) for a in self.accepted[n]],
                             "rms_ratio": np.round(self.rms_ratio[n], 4).tolist(),
                             "note": list(self.notes[n])}
                         for n in self.shifts_mm}}


def _images(images, shape) -> list[np.ndarray]:
    out = []
    for k, im in enumerate(images):
        a = np.asarray(im, dtype=np.float64)
        if a.shape != shape:
            raise InputError(f"image {k} has shape {a.shape}, the regions {shape}",
                             field="images")
        if not np.all(np.isfinite(a)):
            raise InputError(f"image {k} holds non-finite values", field="images")
        out.append(a)
    if not out:
        raise InputError("no image given", field="images")
    return out


def _grow(box: tuple[slice, ...], pad, shape) -> tuple[slice, ...]:
    pad = np.broadcast_to(np.asarray(pad, int), (3,))
    return tuple(slice(max(b.start - int(p), 0), min(b.stop + int(p), n))
                 for b, p, n in zip(box, pad, shape, strict=True))


def _inner(box: tuple[slice, ...], ext: tuple[slice, ...]) -> tuple[slice, ...]:
    """``box`` as slices of the crop ``ext``."""
    return tuple(slice(b.start - e.start, b.stop - e.start) for b, e in zip(box, ext, strict=True))


def _keys_of(regions: GTMRegions, voi: str) -> list[str]:
    keys = [k for k, o in regions.owner.items() if o == voi]
    if not keys or voi == BACKGROUND:
        known = sorted(set(regions.owner.values()) - {BACKGROUND})
        raise InputError(f"unknown VOI {voi!r}; the regions hold {known}", field="vois")
    return keys


def fit_local_shifts(images: Sequence[np.ndarray], regions: GTMRegions,
                     spacing_mm: Sequence[float], vois: Sequence[str], *,
                     max_shift_mm: float | None = None,
                     window_mm: float | None = None) -> LocalShifts:
    """Translation of each VOI in each image that best explains the image (module docstring).

    Parameters
    ----------
    images : sequence of (Z, Y, X) ndarray
        Emission images (concentration) on the regions' grid, e.g. the registered time points.
    regions : GTMRegions
        From :func:`theradose.segmentation.gtm_regions` (its FWHM is the PSF).
    spacing_mm : sequence of 3 float
        Voxel size ``(x, y, z)``, mm.
    vois : sequence of str
        VOIs to align (compact and hot on the emission image: lesions).
    max_shift_mm : float, optional
        Search range per axis, mm (default: one FWHM; a larger misalignment is a failed
        registration to fix upstream).
    window_mm : float, optional
        Margin of the fitting window around the VOI, mm (default: two FWHM, where its spread
        function has fallen below 0.2 %).

    Returns
    -------
    LocalShifts

    Raises
    ------
    InputError
        Unknown VOI, images of another shape or with non-finite values, bad spacing or ranges.
    """
    sp = _zyx_spacing(spacing_mm)
    fwhm = float(regions.settings["fwhm_mm"])
    max_shift = fwhm if max_shift_mm is None else float(max_shift_mm)
    window = 2.0 * fwhm if window_mm is None else float(window_mm)
    for name, v in (("max_shift_mm", max_shift), ("window_mm", window)):
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"must be a finite number > 0, got {v!r}", field=name)
    shape = next(iter(regions.sources.values())).shape
    imgs = _images(images, shape)
    sig = fwhm / FWHM_PER_SIGMA / sp
    rad = np.array([int(_TRUNCATE * s + 0.5) for s in sig])
    reach = np.ceil(max_shift / sp).astype(int) + 1
    n_img = len(imgs)
    current = {v: np.zeros((n_img, 3)) for v in vois}
    out: dict[str, dict[str, Any]] = {}
    todo = list(dict.fromkeys(vois))
    for _ in range(_SWEEPS):  # Gauss-Seidel over VOIs whose windows hold another moved VOI
        again = []
        for voi in todo:
            others = {v: s for v, s in current.items() if v != voi}
            rec = _fit_voi(imgs, regions, voi, sp, sig, rad + reach, window, max_shift,
                           others, out[voi]["fit"] if voi in out else None)
            new = np.where(rec["ok"][:, None], rec["fit"], 0.0)
            changed = float(np.max(np.abs(new - current[voi])))
            out[voi], current[voi] = rec, new
            if rec["neighbours"] and changed > _SWEEP_TOL_MM:
                again += [voi, *rec["neighbours"]]
        todo = [v for v in dict.fromkeys(again)]
        if not todo:
            break
    return LocalShifts(
        shifts_mm={v: np.where(r["ok"][:, None], r["fit"], 0.0) for v, r in out.items()},
        fitted_mm={v: r["fit"] for v, r in out.items()},
        accepted={v: r["ok"] for v, r in out.items()},
        notes={v: r["note"] for v, r in out.items()},
        rms_ratio={v: r["ratio"] for v, r in out.items()},
        settings={"fwhm_mm": fwhm, "window_mm": window, "max_shift_mm": max_shift,
                  "method": "translation of the VOI's regional spread functions fitted to the "
                            "image (least squares, Powell); other sources fixed, other aligned "
                            "VOIs at their current fit (Gauss-Seidel passes)"})


def shift_linear(a: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """``a`` translated by ``shift`` voxels (per axis) with linear interpolation, zeros outside.

    The same result as ``scipy.ndimage.shift(a, shift, order=1, mode="grid-constant")`` (output
    ``[x] = a[x - shift]``), computed as one two-tap linear interpolation per axis by array
    slicing (separable; several times faster on the small crops this module shifts thousands
    of times).
    """
    out = np.asarray(a, dtype=np.float64)
    for axis, d in enumerate(shift):
        d = float(d)
        if d == 0.0:
            continue
        k = math.floor(d)
        f = d - k
        n = out.shape[axis]
        res = np.zeros_like(out)
        for off, w in ((k, 1.0 - f), (k + 1, f)):
            if w == 0.0 or abs(off) >= n:
                continue
            dst = [slice(None)] * out.ndim
            src = [slice(None)] * out.ndim
            dst[axis] = slice(max(off, 0), n + min(off, 0))
            src[axis] = slice(max(-off, 0), n - max(off, 0))
            res[tuple(dst)] += w * out[tuple(src)]
        out = res
    return out


def _residual(s_vox: np.ndarray, moving: list[np.ndarray], inner: tuple[slice, ...],
              fixed: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Residual sum of squares and concentrations of the window model, VOI translated."""
    cols = [shift_linear(m, s_vox)[inner].ravel() for m in moving]
    a = np.column_stack([*cols, fixed])
    return _lsq(a, y)


def _lsq(a: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Least squares ``a c ≈ y``: residual sum of squares and ``c``.

    Normal equations (a few columns, thousands of rows: an order of magnitude faster than an
    SVD) with a ridge of 1e-10 of the largest diagonal element, which only matters for a
    column that is (almost) zero in the window — a source that barely reaches it — whose
    coefficient it keeps finite instead of letting the solve fail; the SVD solution if it
    fails anyway.
    """
    ata = a.T @ a
    ridge = 1e-10 * float(np.max(np.diag(ata), initial=0.0))
    try:
        c = np.linalg.solve(ata + ridge * np.eye(ata.shape[0]), a.T @ y)
        if not np.all(np.isfinite(c)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        c = np.linalg.lstsq(a, y, rcond=None)[0]
    r = y - a @ c
    return float(r @ r), c


def _fit_voi(imgs: list[np.ndarray], regions: GTMRegions, voi: str, sp: np.ndarray,
             sig: np.ndarray, pad: np.ndarray, window: float, max_shift: float,
             others: Mapping[str, np.ndarray], start: np.ndarray | None) -> dict[str, Any]:
    """Fit one VOI's translation in every image (see :func:`fit_local_shifts`).

    ``others``: the current shifts (mm, x y z, per image) of the other aligned VOIs, whose
    sources in the window are placed there; ``start``: a previous fit to start from.
    """
    keys = _keys_of(regions, voi)
    shape = imgs[0].shape
    mine = np.logical_or.reduce([np.asarray(regions.sources[k], bool) for k in keys])
    win = _bbox(mine, np.ceil(window / sp).astype(int))
    ext = _grow(win, pad, shape)
    inner = _inner(win, ext)
    cols, fixed_keys, moved = [], [], []
    for k, src in regions.sources.items():
        crop = np.asarray(src[ext], float)
        o = regions.owner[k]
        if o == voi or not crop.any():
            continue
        b = ndimage.gaussian_filter(crop, sig, mode="constant")
        if o in others:
            moved.append((b, others[o]))
        else:
            cols.append(b[inner].ravel())
            fixed_keys.append(k)
    moving = [ndimage.gaussian_filter(np.asarray(regions.sources[k][ext], float), sig,
                                      mode="constant") for k in keys]
    vol = np.array([float(np.sum(regions.sources[k])) for k in keys])
    n_win = int(np.prod([s.stop - s.start for s in win]))
    static = np.column_stack(cols) if cols else np.zeros((n_win, 0))
    ibg = fixed_keys.index(BACKGROUND) if BACKGROUND in fixed_keys else None
    n_img = len(imgs)
    rec: dict[str, Any] = {"fit": np.zeros((n_img, 3)), "ok": np.zeros(n_img, bool),
                           "note": [], "ratio": np.ones(n_img),
                           "neighbours": sorted({regions.owner[k] for k in regions.sources
                                                 if regions.owner[k] in others
                                                 and np.any(regions.sources[k][ext])})}
    for t, img in enumerate(imgs):
        y = img[win].ravel()
        fixed = np.column_stack([static] + [
            shift_linear(b, s[t][::-1] / sp)[inner].ravel()
            for b, s in moved])
        r0, c = _residual(np.zeros(3), moving, inner, fixed, y)
        x0 = np.zeros(3) if start is None else np.asarray(start[t], float)[::-1]
        res = optimize.minimize(lambda s, y=y, f=fixed: _residual(s / sp, moving, inner, f, y)[0],
                                x0, method="Powell", bounds=[(-max_shift, max_shift)] * 3,
                                options={"xtol": 0.02, "ftol": 1e-8})
        s_mm = np.asarray(res.x, float)
        r1, c1 = _residual(s_mm / sp, moving, inner, fixed, y)
        if r1 < r0:  # never worse than the registration's own position
            c = c1
        else:
            s_mm, r1 = np.zeros(3), r0
        c_voi = float(np.dot(c[:len(keys)], vol) / vol.sum())
        c_bg = float(c[len(keys) + ibg]) if ibg is not None else 0.0
        note = ""
        if np.any(np.abs(s_mm) >= 0.999 * max_shift - 0.05):
            note = f"shift at the search limit ±{max_shift:g} mm"
        elif not c_voi > c_bg:
            note = (f"not hotter than the background in the window ({c_voi:.4g} vs "
                    f"{c_bg:.4g}): its position cannot be measured")
        rec["fit"][t] = s_mm[::-1]
        rec["ok"][t] = note == ""
        rec["note"].append(note)
        rec["ratio"][t] = math.sqrt(r1 / r0) if r0 > 0 else 1.0
    return rec


def _move(crop: dict[str, np.ndarray], keys: list[str], s_vox: np.ndarray) -> None:
    """Translate the sub-regions ``keys`` in ``crop`` (in place).

    The other regions give way where the VOI arrives and the part it vacates joins the
    background, so a partition stays a partition.
    """
    old = sum((crop[k] for k in keys if k in crop), np.zeros(next(iter(crop.values())).shape))
    news = {k: np.clip(shift_linear(crop[k], s_vox), 0.0, 1.0)
            for k in keys if k in crop}
    new = np.clip(sum(news.values()), 0.0, 1.0)
    for k in crop:
        if k not in news:
            crop[k] = crop[k] * (1.0 - new)
    if BACKGROUND in crop:
        crop[BACKGROUND] = crop[BACKGROUND] + old * (1.0 - new)
    crop.update(news)


def _groups(boxes: list[tuple[tuple[slice, ...], str, np.ndarray]], pad, shape
            ) -> list[tuple[tuple[slice, ...], list[tuple[str, np.ndarray]]]]:
    """Merge the change boxes whose blur reach overlaps (their updates would interact)."""
    groups = [(b, [(v, s)]) for b, v, s in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = _grow(groups[i][0], pad, shape), _grow(groups[j][0], pad, shape)
                if all(x.start < y.stop and y.start < x.stop for x, y in
                       zip(a, b, strict=True)):
                    box = tuple(slice(min(x.start, y.start), max(x.stop, y.stop))
                                for x, y in zip(groups[i][0], groups[j][0], strict=True))
                    groups[i] = (box, groups[i][1] + groups[j][1])
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def shifted_voi_totals(images: Sequence[np.ndarray], regions: GTMRegions,
                       spacing_mm: Sequence[float],
                       shifts: LocalShifts | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`theradose.segmentation.gtm_voi_totals` with VOIs translated per image.

    Parameters
    ----------
    images : sequence of (Z, Y, X) ndarray
        Concentration images on the regions' grid.
    regions : GTMRegions
        The region set (as drawn).
    spacing_mm : sequence of 3 float
        Voxel size ``(x, y, z)``, mm.
    shifts : LocalShifts or mapping of str to (T, 3) array_like
        Translation of each VOI in each image, mm along ``(x, y, z)`` (:func:`fit_local_shifts`).

    Returns
    -------
    dict of str to (T,) ndarray
        Corrected total per VOI (and :data:`BACKGROUND`), image unit × mL.

    Raises
    ------
    InputError
        Unknown VOI, shifts not (T, 3) finite, images of another shape.
    """
    sp = _zyx_spacing(spacing_mm)
    fwhm = float(regions.settings["fwhm_mm"])
    table = shifts.shifts_mm if isinstance(shifts, LocalShifts) else shifts
    shape = next(iter(regions.sources.values())).shape
    imgs = _images(images, shape)
    moves: dict[str, np.ndarray] = {}
    for voi, s in table.items():
        _keys_of(regions, voi)
        arr = np.asarray(s, float)
        if arr.shape != (len(imgs), 3) or not np.all(np.isfinite(arr)):
            raise InputError(f"shifts of {voi!r} must be finite with shape ({len(imgs)}, 3), "
                             f"got {arr.shape}", field="shifts")
        moves[voi] = arr[:, ::-1] / sp  # (T, 3) voxels, z y x
    names, w = gtm_matrix(regions.sources, spacing_mm, fwhm, rois=regions.rois)
    index = {k: i for i, k in enumerate(names)}
    roi_n = np.array([float(np.sum(regions.rois[k])) for k in names])
    m0 = w * roi_n[:, None]
    vol0 = np.array([float(np.sum(regions.sources[k])) for k in names])
    t0 = np.array([[float(np.sum(img[np.asarray(regions.rois[k], bool)])) for img in imgs]
                   for k in names])
    sig = fwhm / FWHM_PER_SIGMA / sp
    rad = np.array([int(_TRUNCATE * s + 0.5) for s in sig]) + 1
    voxel_ml = float(np.prod(sp)) / 1000.0
    out = {regions.owner[k]: np.zeros(len(imgs)) for k in names}
    for t, img in enumerate(imgs):
        m, n_roi, vol, tt = m0.copy(), roi_n.copy(), vol0.copy(), t0[:, t].copy()
        boxes = []
        for voi, s in moves.items():
            sv = s[t]
            if np.all(np.abs(sv) < 1e-3):
                continue
            keys = _keys_of(regions, voi)
            mask = np.logical_or.reduce([np.asarray(regions.sources[k], bool) for k in keys]
                                        + [np.asarray(regions.rois[k], bool) for k in keys])
            boxes.append((_bbox(mask, np.ceil(np.abs(sv)).astype(int) + 1), voi, sv))
        for box, members in _groups(boxes, rad, shape):
            ext = _grow(box, rad, shape)
            inner = _inner(box, ext)
            src = {k: np.asarray(v[ext], float) for k, v in regions.sources.items()
                   if np.any(v[ext])}
            roi = {k: np.asarray(v[ext], float) for k, v in regions.rois.items()
                   if np.any(v[ext])}
            src_new, roi_new = dict(src), dict(roi)
            if BACKGROUND in index:  # the vacated part goes there, even where it was absent
                crop_shape = tuple(e.stop - e.start for e in ext)
                src_new.setdefault(BACKGROUND, np.zeros(crop_shape))
                roi_new.setdefault(BACKGROUND, np.zeros(crop_shape))
            for voi, sv in members:
                _move(src_new, _keys_of(regions, voi), sv)
                _move(roi_new, _keys_of(regions, voi), sv)
            zero = np.zeros(next(iter(src_new.values())).shape)
            blur = {}
            for k in src_new:
                old, new = src.get(k, zero), src_new[k]
                b_old = ndimage.gaussian_filter(old, sig, mode="constant") if old.any() else zero
                b_new = b_old if np.array_equal(old, new) else \
                    ndimage.gaussian_filter(new, sig, mode="constant")
                blur[k] = (b_old, b_new)
                vol[index[k]] += float(np.sum(new - old))
            for j, q_new in roi_new.items():
                q_old = roi.get(j, zero)
                dq = (q_new - q_old)[inner]
                jj = index[j]
                n_roi[jj] += float(dq.sum())
                tt[jj] += float(np.sum(dq * img[box]))
                for i, (b_old, b_new) in blur.items():
                    m[jj, index[i]] += float(np.sum(dq * b_new[inner])) + \
                        float(np.sum(q_old * (b_new - b_old)))
        ok = n_roi > 0
        wk = m[ok] / n_roi[ok, None]
        obs = tt[ok] / n_roi[ok]
        if np.linalg.cond(wk) <= COND_MAX and wk.shape[0] == wk.shape[1]:
            c = np.linalg.solve(wk, obs)
        else:
            c = np.linalg.lstsq(wk, obs, rcond=None)[0]
        for i, k in enumerate(names):
            out[regions.owner[k]][t] += c[i] * vol[i] * voxel_ml
    return out
