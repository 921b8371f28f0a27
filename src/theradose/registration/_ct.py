"""CT-to-CT registration with SimpleITK: rigid (Euler3D) and optional BSpline refinement.

Both stages use the Mattes mutual information metric with linear interpolation. The rigid stage
(SimpleITK) draws a random 10 % sample of the fixed-image voxels with a fixed seed, on one thread,
so that the result is reproducible bit for bit, on a 4-2-1 multi-resolution pyramid with Gaussian
smoothing. The BSpline stage (:mod:`theradose.registration._bspline_mi`, numpy) uses every
voxel of a ~12 mm working grid inside the body, a 60 mm control-point mesh, a bending penalty
and L-BFGS-B. The transforms follow the ITK convention: they map points of the **fixed**
(reference) image to the **moving** image.

References
----------
D. Mattes, D. R. Haynor, H. Vesselle, T. K. Lewellen, W. Eubank, "PET-CT image registration in
the chest using free-form deformations", IEEE Trans. Med. Imaging 22 (2003) 120-128,
doi:10.1109/TMI.2003.809072 (Mattes mutual information, BSpline free-form deformation).
B. C. Lowekamp, D. T. Chen, L. Ibáñez, D. Blezek, "The design of SimpleITK", Front. Neuroinform.
7 (2013) 45, doi:10.3389/fninf.2013.00045.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from theradose.registration._bspline_mi import refine_bspline

__all__ = ["CTRegistration", "register_ct", "single_threaded_itk"]

log = logging.getLogger("theradose")

#: Settings of the rigid stage (documented in docs/registration.md).
RIGID = {"bins": 50, "sampling": 0.10, "shrink": (4, 2, 1), "smooth_mm": (8.0, 4.0, 0.0),
         "learning_rate": 2.0, "min_step": 1e-4, "iterations": 200, "relaxation": 0.5}
#: Settings of the BSpline stage (:func:`theradose.registration._bspline_mi.refine_bspline`).
#: Mattes MI over every voxel of a ~``work_mm`` working grid inside the body (CT > ``body_hu``
#: after 3 mm smoothing, dilated by ``mask_margin_mm`` so the skin edge is kept), 60 mm control
#: points, ``bending`` penalty, 40 L-BFGS-B iterations. Chosen on the demo patients (5 mm CT,
#: body-mean residual vs the known motion; rigid alone 4.3-4.9 mm): the earlier SimpleITK stage
#: (8 % sample of the body, no penalty, stopped at 20 iterations) gave 1.9-2.7 mm over seeds
#: 0-5; this gives 1.0-1.9 mm in ~6 s per time point (30 iterations: 1.1-1.96 mm, higher than
#: 40 on each of seeds 0-3). Penalty weight on seed 0, first time point (prototype with 4 mm
#: smoothing, up to 150 iterations): 0 -> 2.5 mm, 1e-4 -> 1.6, 3e-4 -> 1.6, 1e-3 -> 1.7,
#: 3e-3 -> 2.0, 1e-2 -> 2.6 mm. Smoothing 2 mm vs 4 mm: 1.6-1.9 vs 1.7-2.0 mm (seed 1); a 5 mm
#: working grid (5x the time) and a 45 mm mesh gave no gain.
BSPLINE = {"bins": 50, "mesh_mm": 60.0, "work_mm": 12.0, "smooth_mm": 2.0, "iterations": 40,
           "bending": 3e-4, "body_hu": -500.0, "mask_margin_mm": 10.0}
#: Fill value of CT outside its field of view (air), HU.
AIR_HU = -1024.0


@dataclass
class CTRegistration:
    """Result of :func:`register_ct`.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Maps fixed (reference) LPS points (mm) to moving points (mm): Euler3D, or a
        ``CompositeTransform`` (BSpline applied first, then the rigid part) when deformable.
    metric_value : float
        Final Mattes mutual information of the last stage (negative; lower is better); with
        ``deformable``, over every voxel (the whole-image check of :func:`register_ct`).
    stop : str
        The optimiser's stopping condition.

    """

    transform: object
    metric_value: float
    stop: str


def _clamped(image):
    """Float32 CT clamped to [-1024, 3071] HU (bone/metal outliers do not dominate MI bins)."""
    import SimpleITK as sitk

    return sitk.Clamp(sitk.Cast(image, sitk.sitkFloat32), sitk.sitkFloat32, AIR_HU, 3071.0)


def _method(bins: int, sampling: float, seed: int):
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, seed=int(seed) + 1)  # seed 0 means "wall clock"
    reg.SetInterpolator(sitk.sitkLinear)
    # one thread: the multi-threaded Mattes MI sums its histogram in a varying order; the
    # rigid result then differs by ~1e-6 mm between runs (an unregularised, sampled BSpline
    # stage amplified that into different optima: 1.3 vs 2.6 mm on the test phantom).
    # Single-threaded, the same seed gives the same transform.
    reg.SetNumberOfThreads(1)
    return reg


@contextlib.contextmanager
def single_threaded_itk() -> Iterator[None]:
    """Run SimpleITK filters inside the block on one thread (the previous default restored).

    ``ImageRegistrationMethod.SetNumberOfThreads(1)`` alone leaves the multi-resolution
    pyramid and the metric's helper filters on the global default: the rigid result then
    differs in the 9th digit between runs (measured on the tests' 8 mm phantom: 4 856 values
    of ``results.json`` differed between two runs), which the kinetics and doses carry on.
    On one thread the same inputs give the same bits; on that phantom the rigid stage took
    0.6-0.8 s either way.
    """
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def register_ct(fixed, moving, *, deformable: bool = False, seed: int = 0) -> CTRegistration:
    """Register a moving CT to a fixed (reference) CT.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        3-D CT images in HU with their LPS geometry.
    deformable : bool
        Refine the rigid result with a cubic BSpline (control-point mesh ~60 mm, mutual
        information over every working-grid voxel inside the body, :func:`_body_mask`, with a
        bending penalty; :func:`~theradose.registration._bspline_mi.refine_bspline`), kept only
        if it improves the mutual information over every voxel of the fixed image (otherwise
        the rigid result is returned, with a warning and the reason in ``stop``).
    seed : int
        Seed of the rigid stage's random metric sampling (same seed, same transform; the
        BSpline stage uses every voxel and is deterministic).

    Returns
    -------
    CTRegistration

    Notes
    -----
    Runs single-threaded in SimpleITK (:func:`single_threaded_itk`), so that the same images
    and seed give the same transform bit for bit.

    """
    with single_threaded_itk():
        return _register_ct(fixed, moving, deformable=deformable, seed=seed)


def _register_ct(fixed, moving, *, deformable: bool, seed: int) -> CTRegistration:
    import SimpleITK as sitk

    f, m = _clamped(fixed), _clamped(moving)
    init = sitk.CenteredTransformInitializer(
        f, m, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = _method(RIGID["bins"], RIGID["sampling"], seed)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=RIGID["learning_rate"], minStep=RIGID["min_step"],
        numberOfIterations=RIGID["iterations"], relaxationFactor=RIGID["relaxation"],
        gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(RIGID["shrink"]))
    reg.SetSmoothingSigmasPerLevel(list(RIGID["smooth_mm"]))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(init, inPlace=False)
    rigid = _as_euler(reg.Execute(f, m))
    metric = float(reg.GetMetricValue())
    stop = reg.GetOptimizerStopConditionDescription()
    log.debug("rigid registration: metric %.4f, %s", metric, stop)
    if not deformable:
        return CTRegistration(rigid, metric, stop)

    try:
        bspline, fit = refine_bspline(
            f, m, rigid, mask=_body_mask(f), mesh_mm=BSPLINE["mesh_mm"],
            work_mm=BSPLINE["work_mm"], smooth_mm=BSPLINE["smooth_mm"], bins=BSPLINE["bins"],
            bending_weight=BSPLINE["bending"], iterations=BSPLINE["iterations"])
    except ValueError as exc:  # too few samples, or all moved out of the moving image
        log.warning("BSpline refinement skipped: %s; the rigid result is kept", exc)
        return CTRegistration(rigid, metric, f"BSpline skipped ({exc}); rigid: {stop}")
    stop = (f"BSpline: {fit.iterations} L-BFGS-B iterations over {fit.n_samples} samples, "
            f"MI {fit.mutual_information:.4f}, {fit.stop}")
    # CompositeTransform applies its list last-to-first: the BSpline (fixed space), then rigid.
    composite = sitk.CompositeTransform([rigid, bspline])
    # check on the whole image: the BSpline was fitted on the working grid inside the body; keep
    # it only if it also improves the metric over every voxel of the fixed image.
    full_rigid, full_def = _full_metric(f, m, rigid), _full_metric(f, m, composite)
    log.debug("BSpline registration: %s; full-image MI %.4f (rigid %.4f)", stop, full_def,
              full_rigid)
    if not full_def < full_rigid:
        log.warning("BSpline refinement rejected: it does not improve the mutual information "
                    "over the whole image (%.4f vs rigid %.4f); the rigid result is kept",
                    full_def, full_rigid)
        return CTRegistration(rigid, full_rigid, f"BSpline rejected (full-image MI "
                              f"{full_def:.4f} vs rigid {full_rigid:.4f}); rigid: {stop}")
    return CTRegistration(composite, full_def, stop)


def _body_mask(fixed):
    """Fixed-image mask of the body (+ margin) for the BSpline stage's samples, or None.

    None (sample every voxel) when the mask would cover under 5 % of the image (nearly empty:
    the sampling would starve) or all of it (no air around the body: nothing to leave out).
    Computed again for each moving image (0.14 s for the demo's 1 M-voxel reference CT, against
    ~5 s for its BSpline stage), which keeps ``register_ct`` free of cached state.
    """
    import SimpleITK as sitk

    smooth = sitk.SmoothingRecursiveGaussian(fixed, 3.0)
    body = sitk.BinaryThreshold(smooth, float(BSPLINE["body_hu"]), 1e30, 1, 0)
    radius = [max(1, round(BSPLINE["mask_margin_mm"] / s)) for s in fixed.GetSpacing()]
    mask = sitk.BinaryDilate(body, radius)
    frac = float(sitk.GetArrayViewFromImage(mask).mean())
    return mask if 0.05 <= frac < 1.0 else None


def _full_metric(fixed, moving, transform) -> float:
    """Mattes MI of ``moving`` through ``transform`` over every voxel of ``fixed`` (1 thread)."""
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=BSPLINE["bins"])
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetNumberOfThreads(1)
    reg.SetInitialTransform(transform)
    return float(reg.MetricEvaluate(fixed, moving))


def _as_euler(transform):
    """The Euler3DTransform inside what ``ImageRegistrationMethod.Execute`` returned."""
    import SimpleITK as sitk

    t = transform
    while isinstance(t, sitk.CompositeTransform) or t.GetName() == "CompositeTransform":
        t = sitk.CompositeTransform(t).GetNthTransform(0)
    return sitk.Euler3DTransform(t)
