"""The command line in-process with arbitrary numbers: exit 0, or exit 2 with one error line.

``theradose.cli.main(argv)`` runs ``fit``, ``kernel``, ``sphere``, ``nuclide`` and ``svalue``
with numeric flags drawn from finite, huge, tiny, zero, negative and non-finite values. The
contract (docs/cli.md): a user mistake gives exit status 2 and exactly one line
``error: ...`` on stderr (``warning:`` lines aside); anything accepted gives exit 0 and output
without NaN or infinity. An exception escaping ``main`` fails the test.

Expensive computations are kept out: every flag is either hostile or takes one fixed valid
value, so the valid combinations are few and come from the (session-temporary) kernel cache.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st

from theradose.cli import main

HOSTILE = [0.0, -0.0, -1.0, -1e308, 1e308, 1e9, 1e-9, 5e-324, 1e-300, float("nan"),
           float("inf"), float("-inf")]
hostile = st.sampled_from(HOSTILE)
anyfloat = st.one_of(hostile, st.floats(allow_nan=True, allow_infinity=True))
anyint = st.one_of(st.sampled_from([0, -1, 2**31, 2**32, 2**63, 2**70, -(2**70)]),
                   st.integers())


def _num(x: float | int) -> str:
    return repr(x) if isinstance(x, int) else repr(float(x))


def _reject_constant(name: str):
    raise AssertionError(f"non-finite number {name} in the JSON output")


def _invoke(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = warnings.showwarning
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            rc = main(["--no-progress", *argv])
    finally:
        warnings.showwarning = saved
    return rc, out.getvalue(), err.getvalue()


def _check(argv: list[str]) -> tuple[int, str]:
    rc, out, err = _invoke(argv)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert rc in (0, 2), (rc, argv, err)
    if rc == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    return rc, out


@settings(max_examples=120)
@given(st.lists(st.one_of(st.floats(0.5, 500.0), anyfloat), min_size=1, max_size=6),
       st.lists(st.one_of(st.floats(0.0, 1e4), anyfloat), min_size=1, max_size=6),
       st.one_of(st.none(), anyfloat), anyfloat, anyfloat, st.one_of(st.none(), anyfloat))
def test_fit(times, values, rel_sigma, cal_u, max_cv, max_corr) -> None:
    argv = ["fit", "--times-h", ",".join(map(_num, times)),
            "--values", ",".join(map(_num, values)), "--calibration-u", _num(cal_u),
            "--max-cv", _num(max_cv),
            "--max-abs-corr", "none" if max_corr is None else _num(max_corr), "--json"]
    if rel_sigma is not None:
        argv += ["--relative-sigma", _num(rel_sigma)]
    rc, out = _check(argv)
    if rc == 0:
        r = json.loads(out, parse_constant=_reject_constant)
        assert math.isfinite(r["tia"]) and r["tia"] >= 0
        assert math.isfinite(r["sigma_tia"]) and r["sigma_tia"] >= 0


@settings(max_examples=15)
@given(st.one_of(st.just("4.8"), hostile.map(_num),
                 st.tuples(hostile, hostile, hostile).map(lambda v: ",".join(map(_num, v)))),
       st.one_of(st.just(10.0), hostile), st.one_of(st.just(256), anyint),
       st.one_of(st.just(0), anyint), st.one_of(st.none(), hostile))
def test_kernel(voxel, radius, samples, seed, density) -> None:
    argv = ["kernel", "--nuclide", "Lu-177", "--voxel-mm", voxel, "--radius-mm", _num(radius),
            "--samples", str(samples), "--seed", str(seed), "--json"]
    if density is not None:
        argv += ["--density", _num(density)]
    rc, out = _check(argv)
    if rc == 0:
        json.loads(out, parse_constant=_reject_constant)


@settings(max_examples=30)
@given(st.lists(st.one_of(st.just(10.0), hostile), min_size=1, max_size=3),
       st.one_of(st.just(1.0), hostile), st.one_of(st.just(0), anyint))
def test_sphere(masses, density, seed) -> None:
    rc, out = _check(["sphere", "--nuclide", "Lu-177", "--mass-g", ",".join(map(_num, masses)),
                      "--density", _num(density), "--seed", str(seed), "--json"])
    if rc == 0:
        json.loads(out, parse_constant=_reject_constant)


names = st.one_of(st.sampled_from(["Lu-177", "177Lu", "Y-90", "Ac-225", "I-131", "Xx-999",
                                   "Lu-177m", "lu177", "", " ", "Lu-", "-177"]),
                  st.text(max_size=8))


@settings(max_examples=60)
@given(names, anyfloat, st.booleans())
def test_nuclide(name, min_yield, chain) -> None:
    argv = ["nuclide", name, "--min-yield", _num(min_yield), "--json"]
    if chain:
        argv.append("--chain")
    rc, out = _check(argv)
    if rc == 0:
        json.loads(out, parse_constant=_reject_constant)


organs = st.one_of(st.sampled_from(["kidneys", "liver", "red_marrow", "spleen", "Kidneys",
                                    "", "body", "lesion_1"]), st.text(max_size=8))


@settings(max_examples=40)
@given(names, organs, organs, st.sampled_from(["adult_male", "adult_female"]), st.booleans())
def test_svalue(nuclide, source, target, phantom, chain) -> None:
    argv = ["svalue", "--nuclide", nuclide, "--source", source, "--target", target,
            "--phantom", phantom, "--json"]
    if chain:
        argv.append("--chain")
    rc, out = _check(argv)
    if rc == 0:
        json.loads(out, parse_constant=_reject_constant)
