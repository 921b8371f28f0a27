"""CT-to-CT registration with SimpleITK: rigid (Euler3D) and optional BSpline refinement.

Both stages use the Mattes mutual information metric on a random sample of the fixed-image voxels
(rigid: 10 %; BSpline: 8 % of those inside the body), drawn with a fixed seed so that the result is
reproducible, a 4-2-1 multi-resolution pyramid with Gaussian smoothing (rigid) or one level on a
~12 mm working grid (BSpline, 60 mm control-point mesh, LBFGSB), and linear interpolation. The
transforms follow the ITK convention: they map points of the **fixed** (reference) image to the
**moving** image.

References
----------
D. Mattes, D. R. Haynor, H. Vesselle, T. K. Lewellen, W. Eubank, "PET-CT image registration in
the chest using free-form deformations", IEEE Trans. Med. Imaging 22 (2003) 120-128,
doi:10.1109/TMI.2003.809072 (Mattes mutual information, BSpline free-form deformation).
B. C. Lowekamp, D. T. Chen, L. Ibáñez, D. Blezek, "The design of SimpleITK", Front. Neuroinform.
7 (2013) 45, doi:10.3389/fninf.2013.00045.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["CTRegistration", "register_ct"]

log = logging.getLogger("theradose")

#: Settings of the rigid stage (documented in docs/registration.md).
RIGID = {"bins": 50, "sampling": 0.10, "shrink": (4, 2, 1), "smooth_mm": (8.0, 4.0, 0.0),
         "learning_rate": 2.0, "min_step": 1e-4, "iterations": 200, "relaxation": 0.5}
#: Settings of the BSpline stage.
#: One level on a working grid of ~``work_mm`` voxels (shrink = round(work_mm / finest spacing)):
#: with 60 mm control points, finer image detail adds time, not accuracy (measured on a virtual
#: patient at 6 mm: 2-1 pyramid 100-160 s per time point, this 17 s, residual 2.7 vs 3.0 mm).
#: 20 LBFGSB iterations: on the demo patient (5 mm, with body fat) 30 gave a body-mean residual
#: of 2.1-2.3 mm in 45 s for three time points, 20 gave 2.2-2.3 mm in ~30 s, 15 gave 2.3-2.4.
#: The metric samples are drawn inside the body only (CT > ``body_hu`` after 3 mm smoothing,
#: dilated by ``mask_margin_mm`` so the skin edge is kept): half the field of view is air, whose
#: samples cost time and carry little information. 8 % of the working grid inside that mask
#: (~4.7 % of the grid) took the same time as 5 % of the whole grid and, on the demo patients
#: (seeds 0, 1), lowered the body-mean residual from 2.2-2.3 / 2.4-2.6 to 2.0-2.1 / 2.3-2.5 mm.
#: More samples help further (10 %: 2.0-2.1 / 2.2-2.4 mm) but cost ~17 s more per demo.
BSPLINE = {"bins": 50, "sampling": 0.08, "mesh_mm": 60.0, "work_mm": 12.0,
           "smooth_mm": 4.0, "iterations": 20, "grad_tol": 1e-5, "body_hu": -500.0,
           "mask_margin_mm": 10.0}
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
        ``deformable``, over every voxel (the hold-out check of :func:`register_ct`).
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
    # rigid result then differs by ~1e-6 mm between runs, which the unregularised BSpline stage
    # amplifies into different optima (1.3 vs 2.6 mm on the test phantom). Single-threaded,
    # the same seed gives the same transform.
    reg.SetNumberOfThreads(1)
    return reg


def register_ct(fixed, moving, *, deformable: bool = False, seed: int = 0) -> CTRegistration:
    """Register a moving CT to a fixed (reference) CT.

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        3-D CT images in HU with their LPS geometry.
    deformable : bool
        Refine the rigid result with a cubic BSpline (control-point mesh ~60 mm, LBFGSB,
        metric samples drawn inside the body: :func:`_body_mask`), kept only if it improves
        the mutual information over every voxel, not only over the random sample it was
        fitted to (otherwise the rigid result is returned, with a
        warning and the reason in ``stop``).
    seed : int
        Seed of the random metric sampling (same seed, same transform).

    Returns
    -------
    CTRegistration

    """
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

    extent = np.asarray(f.GetSize()) * np.asarray(f.GetSpacing())
    mesh = np.maximum(1, np.rint(extent / BSPLINE["mesh_mm"])).astype(int).tolist()
    bspline = sitk.BSplineTransformInitializer(f, mesh, order=3)
    reg = _method(BSPLINE["bins"], BSPLINE["sampling"], seed)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=BSPLINE["grad_tol"],
                             numberOfIterations=BSPLINE["iterations"],
                             maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=200,
                             costFunctionConvergenceFactor=1e7)
    shrink = max(1, int(np.rint(BSPLINE["work_mm"] / min(f.GetSpacing()))))
    reg.SetShrinkFactorsPerLevel([shrink])
    reg.SetSmoothingSigmasPerLevel([BSPLINE["smooth_mm"]])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    mask = _body_mask(f)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetMovingInitialTransform(rigid)
    reg.SetInitialTransform(bspline, inPlace=True)
    reg.Execute(f, m)
    stop = reg.GetOptimizerStopConditionDescription()
    # CompositeTransform applies its list last-to-first: the BSpline (fixed space), then rigid.
    composite = sitk.CompositeTransform([rigid, bspline])
    # hold-out check: the BSpline was fitted to a ~8 % sample of the body voxels and, having no
    # regularisation, can fit that sample's noise (on a purely rigid test motion it did, by
    # 1.3-2.8 mm depending on the sample). Keep it only if it also improves the metric over
    # every voxel of the fixed image.
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
    """Fixed-image mask of the body (+ margin) for the BSpline metric samples, or None.

    None (sample every voxel) when the mask would cover under 5 % of the image (nearly empty:
    the sampling would starve) or all of it (no air around the body: nothing to leave out).
    Computed again for each moving image (0.14 s for the demo's 1 M-voxel reference CT, against
    ~10 s for its BSpline stage), which keeps ``register_ct`` free of cached state.
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
