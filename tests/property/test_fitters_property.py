"""Kinetic fits on arbitrary time-activity data: a finite TIA >= 0 with sigma >= 0, or an error.

Times and activities are drawn with 0, negative, huge (up to 1e308), tiny (subnormal) and
non-finite values. Every fit function of :mod:`theradose.kinetics` must either return a finite
TIA >= 0 with a finite sigma >= 0, or raise InputError / FitError: never another exception,
never a NaN, an infinity or a negative TIA handed on to the dose.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from theradose.errors import FitError, InputError
from theradose.kinetics import (
    fit_tac,
    fit_voxels,
    haenscheid_stp,
    madsen_stp,
    two_point_tia,
)

SPECIAL = [0.0, -0.0, -1.0, 1e-308, 5e-324, 1e308, -1e308, float("nan"), float("inf"),
           float("-inf"), 1e100, 1e-100]
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(SPECIAL),
                    st.floats(0.1, 1e4))
times = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from([0.0, -1.0, 1e-300, 1e308, float("nan"), 4.0, 24.0, 96.0]),
                  st.floats(0.5, 500.0))


@st.composite
def tacs(draw, min_size: int = 1, max_size: int = 6):
    n = draw(st.integers(min_size, max_size))
    if draw(st.booleans()):   # plausible increasing times, hostile values
        t = sorted(draw(st.lists(st.floats(0.5, 500.0), min_size=n, max_size=n, unique=True)))
    else:
        t = draw(st.lists(times, min_size=n, max_size=n))
    y = draw(st.lists(numbers, min_size=n, max_size=n))
    return t, y


def _ok(tia, sigma) -> None:
    assert isinstance(tia, float | np.floating) and math.isfinite(tia) and tia >= 0, tia
    if sigma is not None:
        assert math.isfinite(sigma) and sigma >= 0, sigma


@settings(max_examples=150)
@given(tacs())
def test_fit_tac(tac) -> None:
    t, y = tac
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fit_tac(t, y, models=("mono", "bi_uptake", "bi"))
    except (InputError, FitError) as exc:
        assert "\n" not in str(exc)
        return
    _ok(float(r.tia), float(r.sigma_tia))


@settings(max_examples=150)
@given(numbers, times)
def test_haenscheid_single_time_point(activity: float, t_h: float) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = haenscheid_stp(activity, t_h)
    except (InputError, FitError):
        return
    _ok(float(r.tia), r.sigma)


@settings(max_examples=150)
@given(numbers, times)
def test_madsen_single_time_point(activity: float, t_h: float) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = madsen_stp(activity, t_h, lambda_eff_per_h=0.01)
    except (InputError, FitError):
        return
    _ok(float(r.tia), r.sigma)


@settings(max_examples=150)
@given(tacs(2, 2))
def test_two_point(tac) -> None:
    t, y = tac
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = two_point_tia(t, y, nuclide="Lu-177")
    except (InputError, FitError):
        return
    _ok(float(r.tia), r.sigma)


@settings(max_examples=60)
@given(tacs(2, 5), st.integers(1, 4))
def test_fit_voxels(tac, n_vox: int) -> None:
    t, y = tac
    images = np.repeat(np.asarray(y, dtype=float)[:, None], n_vox, axis=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fit_voxels(t, images)
    except (InputError, FitError):
        return
    tia = np.asarray(r.tia)
    assert np.all(np.isfinite(tia)) and np.all(tia >= 0), tia
    if getattr(r, "sigma", None) is not None:
        s = np.asarray(r.sigma)
        assert np.all(np.isfinite(s)) and np.all(s >= 0), s


def test_fit_tac_subnormal_values_finish_in_seconds() -> None:
    """Run in a subprocess: the fit loops in compiled code that a signal cannot interrupt."""
    code = ("import warnings; warnings.simplefilter('ignore')\n"
            "from theradose.errors import InputError, FitError\n"
            "from theradose.kinetics import fit_tac\n"
            "try:\n"
            "    r = fit_tac([4.0, 24.0, 96.0, 168.0], [1e-308, 1e-308, 1e-309, 1e-310])\n"
            "    print(r.tia, r.sigma_tia)\n"
            "except (InputError, FitError):\n"
            "    print(0.0, 0.0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=20, check=True).stdout.split()
    _ok(float(out[0]), float(out[1]))
