"""``theradose nuclide`` through ``theradose.cli.main`` (in-process)."""

import json

import pytest

from theradose.cli import main


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_lu177_json_keys_and_values(capsys):
    d = _json(capsys, ["nuclide", "Lu-177", "--json"])
    assert set(d) == {"nuclide", "half_life_h", "energy_per_decay_kev", "lines", "source"}
    assert set(d["energy_per_decay_kev"]) == {"electron", "photon", "alpha"}
    assert d["nuclide"] == "Lu-177"
    # ICRP-107 / MIRD: T½ 6.647 d, electrons 147.9 keV, photons 35.1 keV per decay
    assert d["half_life_h"] == pytest.approx(6.647 * 24)
    assert d["energy_per_decay_kev"]["electron"] == pytest.approx(147.9, abs=0.2)
    assert d["energy_per_decay_kev"]["photon"] == pytest.approx(35.1, abs=0.1)
    assert all(set(ln) == {"type", "energy_kev", "yield"} for ln in d["lines"])
    # default: photon lines with yield >= 0.001, which include the 208.4 keV γ (11.0 %)
    assert {ln["type"] for ln in d["lines"]} == {"gamma", "X"}
    assert min(ln["yield"] for ln in d["lines"]) >= 0.001
    g208 = [ln for ln in d["lines"] if abs(ln["energy_kev"] - 208.366) < 0.01]
    assert g208 and g208[0]["yield"] == pytest.approx(0.110)
    assert d["source"].startswith("ICRP Publication 107")


def test_all_lines_and_min_yield(capsys):
    d = _json(capsys, ["nuclide", "177Lu", "--json", "--all-lines", "--min-yield", "0.05"])
    assert {"IE", "auger", "gamma"} <= {ln["type"] for ln in d["lines"]}
    assert min(ln["yield"] for ln in d["lines"]) >= 0.05
    energies = [ln["energy_kev"] for ln in d["lines"]]
    assert energies == sorted(energies)


def test_chain_json_for_ac225(capsys):
    d = _json(capsys, ["nuclide", "Ac-225", "--json", "--chain"])
    assert set(d) == {"nuclide", "half_life_h", "energy_per_decay_kev", "lines", "source",
                      "chain", "equilibrium_energy_per_decay_kev"}
    assert d["chain"][0]["nuclide"] == "Ac-225" and len(d["chain"]) == 7
    # ~28 MeV of α (+ recoil) energy per Ac-225 decay in equilibrium (see test_chain.py)
    assert 27_500 < d["equilibrium_energy_per_decay_kev"]["alpha"] < 28_200
    # α lines only with --all-lines: the default lists photons
    assert "alpha" not in {ln["type"] for ln in d["lines"]}


def test_readable_table(capsys):
    assert main(["nuclide", "Pb-212", "--chain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Pb-212  half-life 10.64 h (10.64 h)")
    assert "electron 176.6" in out  # hand: β⁻ 101.71 + IE 70.26 + Auger 4.66 keV (ICRP-107)
    assert "Tl-208" in out and "energy per parent decay in equilibrium" in out
    assert main(["nuclide", "I-131", "--chain"]) == 0
    assert "left out Xe-131m" in capsys.readouterr().out


def test_unknown_nuclide_message(capsys):
    main(["nuclide", "Lu-1777"])
    err = capsys.readouterr().err
    assert err.startswith("error: nuclide: unknown nuclide 'Lu-1777'")
    assert "did you mean Lu-177" in err and err.count("\n") == 1


def test_unknown_nuclide_exit_status(capsys):
    assert main(["nuclide", "Lu-1777"]) == 2


def test_negative_min_yield_is_rejected(capsys):
    assert main(["nuclide", "Lu-177", "--min-yield", "-1"]) == 2
    assert "--min-yield" in capsys.readouterr().err
