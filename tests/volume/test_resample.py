"""Resampling: conservation laws and hand-worked block sums/means."""

import numpy as np
import pytest

from theradose.errors import InputError
from theradose.volume import Geometry, LabelMap, Volume, resample


def _rot(deg):
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


SRC = Geometry((10, 12, 14), (2.0, 2.0, 3.0), (-5.0, 3.0, 1.0))
RNG = np.random.default_rng(7)
ACT = Volume(RNG.random(SRC.shape), SRC, unit="MBq")
CONC = Volume(RNG.random(SRC.shape), SRC, unit="Bq/mL")
# covers SRC completely (SRC spans x -6..22, y 2..26, z -0.5..29.5 mm)
COVER = Geometry((9, 11, 11), (3.3, 3.1, 4.7), (-10.0, 0.0, -4.0))
ROTATED = Geometry((14, 24, 24), (3.0, 3.0, 3.0), (-30.0, -20.0, -10.0), _rot(20))


@pytest.mark.parametrize("target", [COVER, ROTATED], ids=["aligned", "rotated"])
def test_total_conserved(target):
    # conservation law: activity inside a covering grid is unchanged
    out = resample(ACT, target)
    assert out.array.sum() == pytest.approx(ACT.array.sum(), rel=1e-12)
    assert "conserving the total" in out.history[-1]


@pytest.mark.parametrize("target", [COVER, ROTATED], ids=["aligned", "rotated"])
def test_integral_of_concentration_conserved(target):
    # conservation law: ∫C dV over the covered region is unchanged (report in history)
    out = resample(CONC, target)
    assert "conserving the mean" in out.history[-1]
    change = float(out.history[-1].rsplit(":", 1)[1])
    assert abs(change) < 1e-12


def test_block_sum_and_mean_by_hand():
    g = Geometry((2, 2, 2), (1, 1, 1))
    arr = np.arange(8, dtype=float).reshape(2, 2, 2)  # 0..7, sum 28, mean 3.5
    one = Geometry((1, 1, 1), (2, 2, 2), (0.5, 0.5, 0.5))
    assert resample(Volume(arr, g, unit="MBq"), one).array.item() == pytest.approx(28.0)
    assert resample(Volume(arr, g, unit="Gy"), one).array.item() == pytest.approx(3.5)


def test_half_voxel_shift_by_hand():
    # 1-D along x: source [1, 3] (1 mm voxels at x=0,1); target voxel centred at 0.5 mm with 1 mm
    # width overlaps half of each: total 0.5*1+0.5*3 = 2 (MBq), mean (1+3)/2 = 2 (Bq/mL)
    g = Geometry((1, 1, 2), (1, 1, 1))
    t = Geometry((1, 1, 1), (1, 1, 1), (0.5, 0, 0))
    arr = np.array([[[1.0, 3.0]]])
    assert resample(Volume(arr, g, unit="MBq"), t).array.item() == pytest.approx(2.0)
    assert resample(Volume(arr, g, unit="Bq/mL"), t).array.item() == pytest.approx(2.0)


def test_up_then_down_is_identity():
    fine = Geometry((20, 24, 28), (1.0, 1.0, 1.5), (-5.5, 2.5, 0.25))
    back = resample(resample(CONC, fine), SRC)
    np.testing.assert_allclose(back.array, CONC.array, rtol=1e-12)
    back = resample(resample(ACT, fine), SRC)
    np.testing.assert_allclose(back.array, ACT.array, rtol=1e-12)


def test_sigma_propagation_block_sum():
    # independent voxels: σ of a sum of 8 voxels with σ=0.1 is 0.1·√8; of their mean 0.1/√8
    g = Geometry((2, 2, 2), (1, 1, 1))
    one = Geometry((1, 1, 1), (2, 2, 2), (0.5, 0.5, 0.5))
    s = np.full(g.shape, 0.1)
    tot = resample(Volume(np.ones(g.shape), g, unit="MBq", sigma=s), one)
    assert tot.sigma.item() == pytest.approx(0.1 * np.sqrt(8))
    mean = resample(Volume(np.ones(g.shape), g, unit="Gy", sigma=s), one)
    assert mean.sigma.item() == pytest.approx(0.1 / np.sqrt(8))


def test_outside_fov_loss_is_reported():
    half = Geometry((10, 12, 7), (2.0, 2.0, 3.0), (-5.0, 3.0, 1.0))  # first 7 of 14 columns
    out = resample(ACT, half)
    expected = ACT.array[:, :, :7].sum()
    assert out.array.sum() == pytest.approx(expected)
    change = float(out.history[-1].rsplit(":", 1)[1])
    assert change == pytest.approx(expected / ACT.array.sum() - 1, abs=1e-3)  # printed to 3 digits


def test_labels_nearest_and_rejects_overlap():
    lab = np.zeros(SRC.shape, np.uint8)
    lab[3:7, 4:8, 5:9] = 2
    lm = LabelMap(lab, SRC, names={2: "liver"})
    fine = Geometry((20, 24, 28), (1.0, 1.0, 1.5), (-5.5, 2.5, 0.25))
    out = resample(lm, fine)
    assert isinstance(out, LabelMap) and out.names == {2: "liver"}
    # exact 2x subdivision: each label voxel becomes 8 voxels
    assert int((out.array == 2).sum()) == 8 * int((lab == 2).sum())
    with pytest.raises(InputError, match="^method: label maps"):
        resample(lm, fine, method="overlap")
    with pytest.raises(InputError, match="^method: unknown method"):
        resample(ACT, fine, method="cubic")


def test_linear_method_states_it_does_not_conserve():
    out = resample(CONC, COVER, method="linear")
    assert "does not conserve the mean exactly" in out.history[-1]
    # linear interpolation of a constant field is exact inside the source
    const = Volume(np.full(SRC.shape, 5.0), SRC, unit="Bq/mL")
    inner = Geometry((3, 3, 3), (2.0, 2.0, 2.0), (4.0, 10.0, 10.0))
    np.testing.assert_allclose(resample(const, inner, method="linear").array, 5.0)


def test_fill_outside_source_for_intensive_images():
    # a CT padded beyond its field of view: outside voxels take `fill`, inside keeps the mean
    g = Geometry((2, 2, 2), (1, 1, 1))
    ct = Volume(np.full(g.shape, 40.0), g, unit="HU")
    big = Geometry((4, 4, 4), (1, 1, 1), (-1, -1, -1))
    out = resample(ct, big, fill=-1000.0)
    assert out.array[1:3, 1:3, 1:3].tolist() == np.full((2, 2, 2), 40.0).tolist()
    assert (out.array == -1000.0).sum() == 64 - 8
