"""propagate_labels: exact shifts, round trip through a rigid transform, errors."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from _reg_phantom import euler
from scipy import ndimage

from theradose.errors import InputError
from theradose.registration import propagate_labels
from theradose.volume import Geometry, LabelMap


def _labels() -> LabelMap:
    g = Geometry((30, 40, 50), (4.0, 4.0, 4.0), (-98.0, -78.0, -58.0))
    c = g.voxel_centres()
    liver = np.sum(((c - [-30.0, 0.0, 0.0]) / [40.0, 30.0, 25.0]) ** 2, axis=-1) <= 1
    kidney = np.sum(((c - [40.0, 10.0, -10.0]) / [15.0, 12.0, 25.0]) ** 2, axis=-1) <= 1
    return LabelMap.from_masks({"liver": liver, "kidney": kidney}, g)


def test_integer_voxel_translation_is_exact_shift():
    # analytic: out(x) = labels(x + 8 mm x̂) on the same 4 mm grid = the array shifted by
    # 2 voxels towards -x (index i of the output reads index i + 2 of the input)
    lab = _labels()
    t = sitk.TranslationTransform(3, (8.0, 0.0, 0.0))
    out = propagate_labels(lab, t, lab.geometry)
    assert np.array_equal(out.array[:, :, :-2], lab.array[:, :, 2:])
    assert np.all(out.array[:, :, -2:] == 0)  # outside the input: background
    assert out.names == lab.names and out.array.dtype == lab.array.dtype
    assert "nearest neighbour" in out.history[-1]


def test_round_trip_differs_only_at_boundaries():
    # T then T^-1 is the identity; nearest-neighbour resampling twice can move a label by at
    # most one voxel, so every changed voxel lies on a VOI boundary and Dice stays > 0.9.
    lab = _labels()
    t = euler(angles=(0.04, -0.03, 0.05), shift=(7.0, -5.0, 9.0))
    moved = propagate_labels(lab, t.GetInverse(), lab.geometry)  # reference labels -> moving
    back = propagate_labels(moved, t, lab.geometry)              # and back
    changed = back.array != lab.array
    edge = np.zeros_like(changed)
    for v in (1, 2):
        m = lab.array == v
        edge |= m ^ ndimage.binary_erosion(m)
        edge |= ndimage.binary_dilation(m) ^ m
    assert np.all(edge[changed])
    for name in ("liver", "kidney"):
        a, b = lab.mask(name), back.mask(name)
        assert 2 * np.sum(a & b) / (a.sum() + b.sum()) > 0.9
    # out(x) = labels(T^-1(x)): the kidney at reference point p appears at T(p), the frame of
    # the moving time point (analytic, within one voxel)
    ck = lab.geometry.voxel_centres()
    want = np.asarray(t.TransformPoint(tuple(ck[lab.mask("kidney")].mean(0))))
    assert np.allclose(ck[moved.mask("kidney")].mean(0), want, atol=4.0)


def test_other_grid_and_identity():
    lab = _labels()
    fine = Geometry((60, 80, 100), (2.0, 2.0, 2.0), (-99.0, -79.0, -59.0))
    out = propagate_labels(lab, None, fine)
    assert out.geometry is fine
    # volume preserved to the boundary discretisation (nearest neighbour onto a 2x finer grid)
    assert out.mask("liver").sum() * fine.voxel_volume_ml == pytest.approx(
        lab.mask("liver").sum() * lab.geometry.voxel_volume_ml, rel=1e-9)


def test_errors():
    lab = _labels()
    with pytest.raises(InputError, match="labels: must be a LabelMap, got ndarray"):
        propagate_labels(lab.array, None, lab.geometry)
    with pytest.raises(InputError, match="target_geometry: must be a Geometry or Volume, got "
                                         "tuple"):
        propagate_labels(lab, None, (1, 2, 3))
    with pytest.raises(InputError, match="transform: must be a 3-D SimpleITK transform, got "
                                         "str"):
        propagate_labels(lab, "identity", lab.geometry)
    with pytest.raises(InputError, match="transform: must be a 3-D SimpleITK transform"):
        propagate_labels(lab, sitk.Euler2DTransform(), lab.geometry)
