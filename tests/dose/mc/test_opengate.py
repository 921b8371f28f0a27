"""OpenGATE adapter: writer files and contents, overwrite refusal, missing-opengate messages,
reading a (synthetic) DoseActor output. OpenGATE itself is not needed."""

from __future__ import annotations

import importlib.util
import json
import types

import numpy as np
import pytest
import SimpleITK as sitk

from theradose.dose.mc import _opengate as og
from theradose.dose.mc._opengate import (
    GateRunError,
    OptionalDependencyError,
    read_gate_dose,
    run_gate_simulation,
    write_gate_simulation,
)
from theradose.errors import (
    GeometryMismatchError,
    InputError,
    OutputExistsError,
    UnitError,
    UnknownNuclideError,
    UnreadableFileError,
)
from theradose.materials import SCHNEIDER_2000
from theradose.nuclides import get_nuclide
from theradose.volume import Volume

SP = (4.0, 4.0, 5.0)
HU = np.array([[[-1000.0, -700.0, 0.0, 40.0], [200.0, 1200.0, 50.0, -90.0]]] * 3)


def ct():
    return Volume.from_array(HU, spacing_mm=SP, origin_mm=(-10, 5, 2), unit="HU")


def tia(unit="MBq*h", value=None):
    a = np.arange(24, dtype=float).reshape(3, 2, 4) if value is None else value
    return Volume.from_array(a, spacing_mm=SP, origin_mm=(-10, 5, 2), unit=unit)


def one_line(exc, field):
    msg = str(exc.value)
    assert "\n" not in msg and field in msg, msg


def test_writer_files_script_and_overwrite(tmp_path):
    out = tmp_path / "gate"
    script = write_gate_simulation(ct(), tia(), "Lu-177", out, n_primaries=10_000, seed=7)
    assert script == out / "simulation.py"
    names = {p.name for p in out.iterdir()}
    assert {"ct.mhd", "ct.raw", "activity.mhd", "activity.raw", "materials.db",
            "voxel_materials.json", "simulation.json", "simulation.py"} == names
    code = compile(script.read_text(), str(script), "exec")  # valid Python
    assert "G4EmStandardPhysics_option4" in json.loads((out / "simulation.json").read_text())[
        "physics_list"]
    assert "DoseActor" in script.read_text() and "VoxelSource" in script.read_text()
    assert code.co_filename == str(script)
    # images round-trip: same values, spacing (x, y, z) as written
    img = sitk.ReadImage(str(out / "activity.mhd"))
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), tia().array)
    assert img.GetSpacing() == SP
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "ct.mhd"))), HU)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_gate_simulation(ct(), tia(), "Lu-177", out, n_primaries=10_000)
    write_gate_simulation(ct(), tia(), "Lu-177", out, n_primaries=20_000, overwrite=True)
    assert json.loads((out / "simulation.json").read_text())["n_primaries"] == 20_000
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temporary files left


def test_source_counts_carry_the_icrp107_energy(tmp_path):
    # Conservation: Σ_sources yield × mean energy = ICRP-107 electron + photon + alpha (no
    # recoil) energy per decay; counts = round(n × yield).
    n = 100_000
    write_gate_simulation(ct(), tia(), "Lu-177", tmp_path, n_primaries=n)
    cfg = json.loads((tmp_path / "simulation.json").read_text())
    assert cfg["total_tia_mbqh"] == pytest.approx(276.0)  # Σ 0..23
    assert cfg["total_decays"] == pytest.approx(276.0 * 3.6e9)
    e = get_nuclide("Lu-177").energy_per_decay_kev
    emitted = {"photon": 0.0, "electron": 0.0}
    for s in cfg["sources"]:
        w = np.asarray(s["weights"])
        if s["energy_type"] == "spectrum_discrete":
            energy = float(np.dot(w, s["energies_kev"]))
        else:
            edges = np.asarray(s["bin_edges_kev"])
            energy = float(np.dot(w, 0.5 * (edges[1:] + edges[:-1])))  # bin centres
        emitted["photon" if s["particle"] == "gamma" else "electron"] += energy
        assert s["n"] == round(n * s["yield_per_parent_decay"])
    assert emitted["photon"] == pytest.approx(e.photon, rel=1e-9)
    # beta: the histogram carries the piecewise-linear ICRP-107 density (as BetaSpectrum.sample
    # draws it); its exact mean per interval is h/6·(2E0p0 + E0p1 + E1p0 + 2E1p1)
    spec = get_nuclide("Lu-177").beta_spectrum()
    e0, e1 = spec.energy_kev[:-1], spec.energy_kev[1:]
    p0, p1 = spec.dn_de_per_kev[:-1], spec.dn_de_per_kev[1:]
    beta = float(np.sum((e1 - e0) / 6 * (2 * e0 * p0 + e0 * p1 + e1 * p0 + 2 * e1 * p1)))
    lines = e.by_class["IE"] + e.by_class["auger"]
    assert emitted["electron"] == pytest.approx(beta + lines, rel=1e-4)  # 8 sub-bins
    # and within 0.5 % of the ICRP-107 mean (coarse tabulation of the spectrum)
    assert emitted["electron"] == pytest.approx(e.electron, rel=5e-3)


def test_chain_and_ion_modes(tmp_path):
    write_gate_simulation(ct(), tia(), "Ac-225", tmp_path / "a", n_primaries=1000, chain=True)
    cfg = json.loads((tmp_path / "a" / "simulation.json").read_text())
    members = {s["member"] for s in cfg["sources"]}
    assert {"Ac-225", "Fr-221", "At-217", "Bi-213", "Po-213"} <= members
    assert any(s["particle"] == "alpha" for s in cfg["sources"])
    write_gate_simulation(ct(), tia(), "Lu-177", tmp_path / "b", n_primaries=1000,
                          source="ion")
    cfg = json.loads((tmp_path / "b" / "simulation.json").read_text())
    assert [s["particle"] for s in cfg["sources"]] == ["ion 71 177"]  # Z = 71, A = 177
    assert cfg["enable_decay"] is True


def test_material_table_covers_the_ct_with_schneider_densities(tmp_path):
    write_gate_simulation(ct(), tia(), "Lu-177", tmp_path, n_primaries=1000,
                          density_tolerance_g_cm3=0.05)
    rows = json.loads((tmp_path / "voxel_materials.json").read_text())
    lo = [r[0] for r in rows]
    hi = [r[1] for r in rows]
    assert lo[0] <= HU.min() and hi[-1] > HU.max()
    assert all(h == lo2 for h, lo2 in zip(hi[:-1], lo[1:], strict=True))  # contiguous
    db = (tmp_path / "materials.db").read_text()
    dens = {}
    for line in db.splitlines():
        if ": d=" in line:
            name, rest = line.split(": d=")
            dens[name] = float(rest.split()[0])
    for a, b, name in rows:
        # density = mean of the Schneider 2000 curve over the bin (±0.05 g/cm³ tolerance)
        assert SCHNEIDER_2000(a) - 0.051 <= dens[name] <= SCHNEIDER_2000(b) + 0.051
        assert abs(SCHNEIDER_2000(b) - SCHNEIDER_2000(a)) <= 0.05 + 0.011 or b - a <= 1
    assert any(n.startswith("cortical_bone") for n in dens)  # 1200 HU voxel


def _no_opengate(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *a, **k):
        return None if name in ("opengate", "opengate_core") else real(name, *a, **k)

    monkeypatch.setattr(og.importlib.util, "find_spec", fake)


def test_clear_message_when_opengate_is_absent(tmp_path, monkeypatch):
    write_gate_simulation(ct(), tia(), "Lu-177", tmp_path, n_primaries=1000)
    _no_opengate(monkeypatch)
    ok, why = og.gate_available()
    assert not ok and "theradose[mc-gate]" in why
    with pytest.raises(OptionalDependencyError, match="OpenGATE is not installed") as exc:
        run_gate_simulation(tmp_path)
    one_line(exc, "opengate")
    assert isinstance(exc.value, InputError) and isinstance(exc.value, ImportError)


def test_clear_message_when_geant4_data_are_missing(tmp_path, monkeypatch):
    core = tmp_path / "site" / "opengate_core"
    (core / "geant4_data" / "G4EMLOW8.5").mkdir(parents=True)
    real = importlib.util.find_spec

    def fake(name, *a, **k):
        if name == "opengate":
            return types.SimpleNamespace(origin="x")
        if name == "opengate_core":
            return types.SimpleNamespace(origin=str(core / "__init__.py"))
        return real(name, *a, **k)

    monkeypatch.setattr(og.importlib.util, "find_spec", fake)
    ok, why = og.gate_available()
    assert not ok and "G4ENSDFSTATE" in why and "G4EMLOW" not in why.split("(")[1]
    for d in ("G4ENSDFSTATE3.0", "G4PhotonEvaporation6.1", "G4RadioactiveDecay6.1"):
        (core / "geant4_data" / d).mkdir()
    assert og.gate_available() == (True, "ok")


def test_run_failure_is_reported(tmp_path, monkeypatch):
    write_gate_simulation(ct(), tia(), "Lu-177", tmp_path, n_primaries=1000)
    monkeypatch.setattr(og, "gate_available", lambda: (True, "ok"))
    (tmp_path / "simulation.py").write_text("raise SystemExit(3)\n")
    with pytest.raises(GateRunError, match="exit status 3"):
        run_gate_simulation(tmp_path)
    with pytest.raises(UnreadableFileError, match="no OpenGATE simulation") as exc:
        run_gate_simulation(tmp_path / "nothing")
    one_line(exc, "out_dir")


def test_read_gate_dose_scales_to_the_whole_tia(tmp_path):
    # A finished run: DoseActor dose (Gy for the simulated decays) and relative uncertainty.
    write_gate_simulation(ct(), tia(), "Lu-177", tmp_path, n_primaries=1000)
    sim_dose = np.full((3, 2, 4), 2e-6)
    rel = np.full((3, 2, 4), 0.05)
    for arr, name in ((sim_dose, "gate_dose_dose.mhd"), (rel, "gate_dose_dose_uncertainty.mhd")):
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / name))
    with pytest.raises(UnreadableFileError, match="run_gate_simulation first"):
        read_gate_dose(tmp_path)
    (tmp_path / "gate_result.json").write_text(json.dumps({
        "dose": "gate_dose_dose.mhd", "dose_uncertainty": "gate_dose_dose_uncertainty.mhd",
        "decays_simulated": 1000.0}))
    d = read_gate_dose(tmp_path)
    # hand: 2e-6 Gy per 1000 decays × (276 MBq·h × 3.6e9 decays) = 1987.2 Gy
    assert d.unit == "Gy"
    np.testing.assert_allclose(d.array, 2e-6 * 276 * 3.6e9 / 1000, rtol=1e-12)
    np.testing.assert_allclose(d.sigma, 0.05 * d.array, rtol=1e-12)
    assert d.geometry.same_as(ct().geometry)  # the input geometry, not GATE's
    (tmp_path / "gate_result.json").write_text(json.dumps({"dose": "gate_dose_dose.mhd"}))
    with pytest.raises(UnreadableFileError, match="decays_simulated") as exc:
        read_gate_dose(tmp_path)
    one_line(exc, "decays_simulated")


def test_writer_validation(tmp_path):
    c, t = ct(), tia()
    cases = [
        (dict(ct=t), UnitError, "in HU", "ct.unit"),
        (dict(ct=np.zeros(3)), InputError, "CT Volume", "ct"),
        (dict(tia=3), InputError, "TIA Volume", "tia"),
        (dict(tia=Volume.from_array(np.ones((3, 2, 4)), spacing_mm=(1, 1, 1), unit="MBq*h")),
         GeometryMismatchError, "different grids", "tia"),
        (dict(tia=tia(value=-np.ones((3, 2, 4)))), InputError, ">= 0", "tia"),
        (dict(tia=tia(value=np.zeros((3, 2, 4)))), InputError, "zero everywhere", "tia"),
        (dict(tia=tia(unit="Gy")), UnitError, "time-integrated", "tia.unit"),
        (dict(n_primaries=0), InputError, "integer >= 1", "n_primaries"),
        (dict(threads=1.5), InputError, "integer >= 1", "threads"),
        (dict(seed=-1), InputError, "integer >= 0", "seed"),
        (dict(source="gun"), InputError, "unknown source", "source"),
        (dict(production_cut_mm=0), InputError, "> 0", "production_cut_mm"),
        (dict(density_tolerance_g_cm3=float("nan")), InputError, "> 0",
         "density_tolerance_g_cm3"),
        (dict(nuclide="Xx-1"), UnknownNuclideError, "Xx-1", "nuclide"),
    ]
    for i, (kw, err, match, field) in enumerate(cases):
        args = {"ct": c, "tia": t, "nuclide": "Lu-177", "out_dir": tmp_path / f"o{i}",
                "n_primaries": 100, **kw}
        with pytest.raises(err, match=match) as exc:
            write_gate_simulation(args.pop("ct"), args.pop("tia"), args.pop("nuclide"),
                                  args.pop("out_dir"), **args)
        one_line(exc, field)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a folder") as exc:
        write_gate_simulation(c, t, "Lu-177", f, n_primaries=10)
    one_line(exc, "out_dir")
