"""confine_tia: TIA blurred outside the body moved to the nearest body voxel (or dropped)."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_fixtures import check_one_line, vol

from theradose.dose import confine_tia, get_engine
from theradose.errors import GeometryMismatchError, InputError
from theradose.volume import LabelMap


def test_nearest_conserves_total_and_sigma_variance():
    # analytic: the outside voxels (x = 0, 1) give their TIA to x = 2, the nearest inside voxel
    tia = np.arange(1.0, 6.0).reshape(1, 1, 5)
    sig = np.full(tia.shape, 0.5)
    inside = np.array([False, False, True, True, True]).reshape(1, 1, 5)
    r = confine_tia(vol(tia, sigma=sig), inside)
    np.testing.assert_allclose(r.array[0, 0], [0.0, 0.0, 6.0, 4.0, 5.0], rtol=1e-15)
    assert r.array.sum() == pytest.approx(tia.sum(), rel=1e-15)
    np.testing.assert_allclose(r.sigma[0, 0], [0.0, 0.0, np.sqrt(0.75), 0.5, 0.5], rtol=1e-12)
    assert "20 % of the total" in r.history[-1] and r.unit == "MBq*h"
    z = confine_tia(vol(tia), LabelMap.from_array(inside.astype(np.uint8),
                                                  spacing_mm=(4.0,) * 3), mode="zero")
    np.testing.assert_allclose(z.array[0, 0], [0.0, 0.0, 3.0, 4.0, 5.0], rtol=1e-15)
    assert z.sigma is None


def test_spill_outside_the_body_no_longer_doses_the_skin_voxels():
    # conservation + the acceptance on a blurred source next to the skin: a TIA spilled
    # into partial-volume skin voxels (ρ = 0.08, 8 % tissue) is dosed ×1/0.08 by any engine;
    # confined, the outside voxels keep only cross-dose
    tia = np.zeros((3, 3, 8))
    tia[:, :, 4:] = 1.0
    tia[:, :, 3] = 0.3  # spill
    rho = np.ones(tia.shape)
    rho[:, :, 3] = 0.08
    rho[:, :, :3] = 0.00121
    body = rho > 0.5
    led = get_engine("led", photons="ignore")
    raw = led.compute(vol(tia), vol(rho, unit="g/cm3"), "Lu-177").dose.array
    conf = led.compute(confine_tia(vol(tia), body), vol(rho, unit="g/cm3"), "Lu-177").dose.array
    assert raw[~body].max() > raw[body].max()  # the spill voxel is the map maximum
    assert conf[~body].max() == 0.0  # LED: no cross-dose at all
    assert conf[body].sum() * 0.064 == pytest.approx(
        raw[body].sum() * 0.064 + raw[:, :, 3].sum() * 0.064 * 0.08, rel=1e-12)


@pytest.mark.parametrize(("kwargs", "exc", "field", "match"), [
    ({"mode": "drop"}, InputError, "mode", "accepted"),
    ({"inside": np.zeros((1, 1, 5), bool)}, InputError, "inside", "empty"),
    ({"inside": np.ones((1, 1, 4), bool)}, GeometryMismatchError, "inside.shape", "differs"),
    ({"inside": vol(np.ones((1, 1, 5)), spacing=(2.0, 4.0, 4.0))}, GeometryMismatchError,
     "inside.spacing_mm", "different grids"),
    ({"tia": np.ones((1, 1, 5))}, InputError, "tia", "Volume"),
])
def test_validation(kwargs, exc, field, match):
    args = {"tia": vol(np.ones((1, 1, 5))), "inside": np.ones((1, 1, 5), bool), **kwargs}
    with pytest.raises(exc, match=match) as ei:
        confine_tia(args.pop("tia"), args.pop("inside"), **args)
    check_one_line(ei, field)


def test_confine_frames_keeps_each_frame_total():
    # conservation: every frame's total is kept, the outside share is reported exactly
    from theradose.dose import confine_frames

    inside = np.zeros((1, 1, 5), bool)
    inside[0, 0, 1:4] = True
    frames = np.array([[[[1.0, 2.0, 3.0, 4.0, 5.0]]], [[[0.0, 0.0, 0.0, 0.0, 0.0]]]])
    out, moved = confine_frames(frames, inside)
    assert out[0].ravel().tolist() == [0.0, 3.0, 3.0, 9.0, 0.0]  # 1 -> voxel 1, 5 -> voxel 3
    assert moved == [6.0 / 15.0, 0.0]
    assert out[1].sum() == 0.0
    same, none = confine_frames(frames, np.ones((1, 1, 5), bool))
    assert np.array_equal(same, frames) and none == [0.0, 0.0]
