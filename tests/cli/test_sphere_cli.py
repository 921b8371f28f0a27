"""``theradose sphere``: JSON document, table for several masses, errors (exit status 2)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import theradose.cli._sphere  # noqa: F401  (registers the command)
import theradose.dose._sphere as sphere_mod
from theradose.cli._main import main
from theradose.cli._sphere import parse_masses
from theradose.dose._point_kernel import RadialKernel
from theradose.errors import InputError

# ICRP-107 energy per decay of Lu-177 (theradose nuclide Lu-177 --json), keV
LU177_E_KEV = 147.92313516289383
LU177_P_KEV = 35.09766519300592


@pytest.fixture
def local_kernels(monkeypatch):
    """Electron energy absorbed at the source (φ = 1); photons uniform on [0, 100 mm]."""

    def kernel(nuclide, emission_class, medium, cache, cache_dir) -> RadialKernel:
        if emission_class == "electron":
            return RadialKernel(np.array([0.0, 1e-9, 1.0]), np.array([LU177_E_KEV, 0.0]),
                                LU177_E_KEV, medium, 1.0, ("electron",), nuclide=nuclide)
        return RadialKernel(np.array([0.0, 100.0]), np.array([LU177_P_KEV]), LU177_P_KEV,
                            medium, 1.0, ("photon",), nuclide=nuclide)

    monkeypatch.setattr(sphere_mod, "_point_kernel", kernel)


def test_sphere_json_single_mass(local_kernels, capsys):
    assert main(["sphere", "--nuclide", "Lu-177", "--mass-g", "10", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"s_value_mgy_per_mbq_s", "mass_g", "radius_mm", "density_g_cm3",
                        "nuclide", "absorbed_fraction", "provenance"}
    # hand calculation: R = 13.365 mm; electrons φ = 1; photons uniform on [0, 100]: φ = 3R/400
    # = 0.100238; S = (147.923 + 35.0977·0.100238) keV × 1.602177e-16 J/keV × 1e12 / 10 g
    # = 2.42636e-3 mGy/(MBq·s)
    assert doc["radius_mm"] == pytest.approx(13.3650, abs=1e-4)
    assert doc["absorbed_fraction"]["photon"] == pytest.approx(0.75 * 13.3650 / 100, rel=1e-4)
    assert doc["s_value_mgy_per_mbq_s"] == pytest.approx(2.42636e-3, rel=1e-5)
    assert doc["nuclide"] == "Lu-177" and doc["density_g_cm3"] == 1.0


def test_sphere_several_masses_table_and_json(local_kernels, capsys):
    assert main(["sphere", "--nuclide", "177Lu", "--mass-g", "0.1,1,10,100"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [ln for ln in out if ln.strip() and ln.split()[0].replace(".", "").isdigit()]
    assert [float(r.split()[0]) for r in rows] == [0.1, 1.0, 10.0, 100.0]
    assert "phi_electron" in out[1] and "phi_photon" in out[1]
    assert main(["sphere", "--nuclide", "Lu-177", "--mass-g", "1,8", "--density", "1.0",
                 "--classes", "electron", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    # conservation with local deposition: S·m = Δe × 1.602177e-4 for every mass
    for d in docs:
        assert d["s_value_mgy_per_mbq_s"] * d["mass_g"] == pytest.approx(
            LU177_E_KEV * 1.602176634e-4, rel=1e-9)
    # radius ∝ m^(1/3): 8 g is twice the radius of 1 g
    assert docs[1]["radius_mm"] == pytest.approx(2 * docs[0]["radius_mm"], rel=1e-12)


def test_sphere_cli_isolated_photons(capsys):
    # Y-90 photons only (0.00123 keV per decay, ICRP-107): the isolated-sphere Monte Carlo runs
    # without any kernel; a 1000 g sphere absorbs part of the photon energy (0 < φ < 1)
    assert main(["sphere", "--nuclide", "Y-90", "--mass-g", "1000", "--classes", "photon",
                 "--photon-method", "isolated", "--seed", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert 0.0 < doc["absorbed_fraction"]["photon"] < 1.0
    assert doc["energy_kev"]["photon"] == pytest.approx(0.0012316, rel=1e-4)
    assert doc["provenance"]["photon_method"] == "isolated"


@pytest.mark.parametrize("args, pattern", [
    (["--mass-g", "abc"], r"^error: --mass-g: expected numbers in g separated by commas, got "
                          r"'abc'$"),
    (["--mass-g", "1,-2"], r"^error: --mass-g: masses must be finite numbers in "
                           r"\[1e-12, 1e\+09\] g, got \[1\.0, -2\.0\]$"),
    (["--mass-g", "1e308"], r"^error: --mass-g: .*got \[1e\+308\]$"),
    (["--mass-g", "1", "--density", "0"], r"^error: --density: expected a density in "
                                          r"\[0\.0001, 25\] g/cm3"),
    (["--mass-g", "1", "--density", "nan"], r"^error: --density: .*got nan$"),
    (["--mass-g", "1", "--density", "1e308"], r"^error: --density: .*got 1e\+308$"),
    (["--mass-g", "1", "--seed", "-1"], r"^error: --seed: must be an integer in "
                                        r"\[0, 4294967295\], got -1$"),
    (["--mass-g", "1", "--seed", str(2**70)], r"^error: --seed: .*got 1180591620717411303424$"),
    (["--mass-g", "1", "--classes", "neutron"], r"^error: --classes: unknown emission classes: "
                                                r"got \['neutron'\]"),
])
def test_sphere_cli_errors(local_kernels, capsys, args, pattern):
    assert main(["sphere", "--nuclide", "Lu-177", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err

    assert re.search(pattern, err)


def test_sphere_cli_unknown_nuclide(capsys):
    assert main(["sphere", "--nuclide", "Qq-1", "--mass-g", "1"]) == 2
    assert "Qq-1" in capsys.readouterr().err


def test_parse_masses():
    assert parse_masses(" 0.1, 1 ,10") == [0.1, 1.0, 10.0]
    with pytest.raises(InputError, match=r"^--mass-g: expected numbers .*'1;2'$") as e:
        parse_masses("1;2")
    assert e.value.field == "--mass-g"
