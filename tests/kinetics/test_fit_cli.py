"""``theradose fit``: JSON output and one-line errors with exit status 2."""

import json
import math

import pytest

import theradose.cli._fit  # noqa: F401  (registers the command before the lead wires it)
from theradose.cli import main

ARGS = ["fit", "--times-h", "4,24,96,168", "--values", "12.1,30.5,18.2,6.3", "--unit", "MBq",
        "--nuclide", "Lu-177"]


def test_fit_json(capsys):
    assert main([*ARGS, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["fits"]) == {"mono", "bi_uptake", "bi", "tri_uptake", "hybrid"}
    # hand value of the hybrid fallback (see test_models.test_hybrid_by_hand): 3438.61 MBq*h
    assert d["selected"] == "hybrid" and d["fallback"] is True
    assert d["tia_mbq_h"] == pytest.approx(2203.4 + 18.2 * 72 / math.log(18.2 / 6.3))
    assert d["sigma_tia_mbq_h"] > 0 and d["tia_unit"] == "MBq*h"
    assert "aicc" in d["fits"]["mono"] and "accepted" in d["fits"]["bi_uptake"]


def test_fit_options_and_table(capsys):
    args = ["fit", "--times-h", "1,4,24,48,96,168", "--values", "12.1,30.5,41,35,22,9",
            "--models", "mono,bi_uptake", "--criterion", "bic", "--calibration-u", "0.05",
            "--sigma", "1,2,2,2,1.5,1"]
    assert main([*args, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sigma_mode"] == "absolute" and d["criterion"] == "bic"
    assert d["sigma_tia"] == pytest.approx(math.hypot(d["sigma_tia_fit"], 0.05 * d["tia"]))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "selected:" in out and "MBq*h" in out and "bi_uptake" in out
    # correlation check off -> bi_uptake selected (same as the library test)
    assert main([*args[:-2], "--max-abs-corr", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["selected"] == "bi_uptake"


@pytest.mark.parametrize(("extra", "match"), [
    (["--times-h", "4,24,96", "--values", "1,2"], "values: got 2 values for 3 times"),
    (["--times-h", "4,24,20", "--values", "1,2,3"], "--times-h: times must be strictly"),
    (["--times-h", "4,24,96", "--values", "1,-2,3"], "values: activities must be >= 0"),
    (["--times-h", "4,24,96", "--values", "1,2,3", "--models", "mono,spline"],
     "models: unknown model 'spline'"),
    (["--times-h", "4,24,96", "--values", "1,2,3", "--nuclide", "Xx-1"],
     "nuclide: unknown nuclide"),
    (["--times-h", "4,a,96", "--values", "1,2,3"], "--times-h: expected comma-separated"),
    (["--times-h", "4,24,96", "--values", "1,2,3", "--max-abs-corr", "0.5,0.6"],
     "--max-abs-corr: expected one number"),
])
def test_fit_errors_exit_2_with_one_line(capsys, extra, match):
    assert main(["fit", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and err.count("\n") == 1
