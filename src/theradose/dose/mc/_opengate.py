"""OpenGATE 10 adapter (optional extra ``mc-gate``): write, run and read a Geant4 simulation.

:func:`write_gate_simulation` writes everything a site with OpenGATE 10 and its Geant4 data needs
to simulate the same patient as theradose's own engines:

* ``ct.mhd`` (HU, float32) and ``activity.mhd`` (TIA per voxel, MBq·h, float32), MetaImage via
  SimpleITK, on the same grid (GATE ignores the direction cosines: the dose comes back in the
  same index space and is given the input geometry again by :func:`read_gate_dose`);
* ``materials.db`` (GATE material database) and ``voxel_materials.json``: HU intervals → material,
  Schneider-2000 style — each theradose material class
  (:data:`theradose.materials.DEFAULT_MATERIAL_CLASSES`) has its NIST composition (xraylib,
  through :data:`theradose.dose._convolution.DEFAULT_MATERIAL_MEDIA`) and is split into HU bins
  whose densities (:data:`theradose.materials.SCHNEIDER_2000`, mean over the bin) differ by at
  most ``density_tolerance_g_cm3`` (Schneider et al. 2000; GATE's
  ``HounsfieldUnit_to_material`` does the same with its own tables);
* ``simulation.json`` (sources, counts, physics, geometry) and ``simulation.py``, a script using
  the OpenGATE 10 API: an ``Image`` volume, one ``VoxelSource`` per particle type with the
  nuclide's ICRP-107 spectrum (``source="spectrum"``: photon lines, beta spectrum as a histogram,
  IC/Auger electron and alpha lines, chain members weighted by their equilibrium ratios) or the
  Geant4 radioactive decay of the ion (``source="ion"``), physics list
  ``G4EmStandardPhysics_option4``, production cuts, a ``DoseActor`` (dose, edep and their
  uncertainties) on the CT grid, and a ``SimulationStatisticsActor``. After the run the script
  writes ``gate_result.json`` (output paths, events).

:func:`run_gate_simulation` runs the script in a new Python process (Geant4 cannot be set up
twice in one process) after checking that ``opengate`` and its Geant4 data are there, and
:func:`read_gate_dose` turns the DoseActor output (Gy per simulated decays) into absorbed dose
for the whole TIA (Gy), with σ from GATE's relative uncertainty.

In ``spectrum`` mode each source emits ``round(n_primaries × yield)`` particles, so the counts
stand for ``n_primaries`` decays (rounding error < 0.5/count, recorded); alpha-recoil energy is not
transported (range < 0.1 µm: local either way, and it is in no DoseActor voxel outside the
source), annihilation lines are dropped when positrons are transported (Geant4 makes them). The
beta histogram holds the piecewise-linear ICRP-107 density (8 sub-bins per tabulated interval, as
:meth:`theradose.nuclides.BetaSpectrum.sample` draws it); for Lu-177 its mean is 0.4 % above the
ICRP-107 mean beta energy because the tabulation is coarse.

References
----------
Sarrut D, Baudier T, Borys D, et al. The OpenGATE ecosystem for Monte Carlo simulation in
medical physics. Phys Med Biol 2022;67:184001. doi:10.1088/1361-6560/ac8c83
Schneider W, Bortfeld T, Schlegel W. Correlation between CT numbers and tissue parameters needed
for Monte Carlo simulations of clinical dose distributions. Phys Med Biol 2000;45:459-478.
doi:10.1088/0031-9155/45/2/314
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from theradose.dose._convolution import DEFAULT_MATERIAL_MEDIA, _version
from theradose.dose._engine import DECAYS_PER_MBQ_H, _tia_to_mbqh
from theradose.dose._media import get_medium
from theradose.errors import (
    GateRunError,
    InputError,
    OptionalDependencyError,
    UnitError,
    UnreadableFileError,
)
from theradose.io._outputs import atomic_path, prepare_output
from theradose.materials import DEFAULT_MATERIAL_CLASSES, SCHNEIDER_2000
from theradose.nuclides import (
    Nuclide,
    data_source,
    decay_chain,
    get_nuclide,
)
from theradose.volume import LabelMap, Volume

__all__ = [
    "GATE_FILES",
    "GateRunError",
    "OptionalDependencyError",
    "gate_available",
    "read_gate_dose",
    "run_gate_simulation",
    "write_gate_simulation",
]

#: Files written by :func:`write_gate_simulation` (key → name in ``out_dir``).
GATE_FILES = {
    "ct": "ct.mhd", "activity": "activity.mhd", "materials": "materials.db",
    "voxel_materials": "voxel_materials.json", "config": "simulation.json",
    "script": "simulation.py",
}
_RESULT = "gate_result.json"
_G4_DATA_PREFIXES = ("G4EMLOW", "G4ENSDFSTATE", "G4PhotonEvaporation", "G4RadioactiveDecay")
_SOURCES = ("spectrum", "ion")
_BETA_SUBBINS = 8


# ---------------------------------------------------------------------------- materials
def _composition(medium: str) -> dict[int, float]:
    """{Z: mass fraction} of a theradose medium (NIST composition via xraylib)."""
    import xraylib

    comp = xraylib.GetCompoundDataNISTByName(get_medium(medium).xraylib_compound)
    return {int(z): float(f) for z, f in zip(comp["Elements"], comp["massFractions"],
                                             strict=True)}


def _material_table(hu_min: float, hu_max: float, tolerance: float
                    ) -> tuple[list[list[Any]], str]:
    """HU bins → (voxel_materials list, GATE material database text)."""
    import xraylib

    edges = [-math.inf, *DEFAULT_MATERIAL_CLASSES.edges_hu, math.inf]
    rows: list[list[Any]] = []
    materials: list[str] = []
    elements: set[int] = set()
    lo_all, hi_all = math.floor(hu_min), math.floor(hu_max) + 1
    for k, cls in enumerate(DEFAULT_MATERIAL_CLASSES.names):
        lo, hi = max(edges[k], lo_all), min(edges[k + 1], hi_all)
        if lo >= hi:
            continue
        comp = _composition(DEFAULT_MATERIAL_MEDIA[cls])
        elements |= set(comp)
        # split [lo, hi) so the density varies by ≤ tolerance within a bin (1-HU steps)
        hu = np.arange(lo, hi + 1, dtype=float)
        rho = SCHNEIDER_2000(hu)
        start = 0
        j = 0
        while start < len(hu) - 1:
            end = start + 1
            while end < len(hu) - 1 and np.ptp(rho[start:end + 1]) <= tolerance:
                end += 1
            a, b = float(hu[start]), float(hu[end])
            d = float(np.mean(SCHNEIDER_2000(np.linspace(a, b, 64))))
            name = f"{cls}_{j:03d}"
            rows.append([a, b, name])
            lines = [f"{name}: d={d:.6g} g/cm3 ; n={len(comp)}"]
            lines += [f"        +el: name={xraylib.AtomicNumberToSymbol(z)}_el ; f={f:.6f}"
                      for z, f in sorted(comp.items())]
            materials.append("\n".join(lines))
            start, j = end, j + 1
    el = [f"{xraylib.AtomicNumberToSymbol(z)}_el: S= {xraylib.AtomicNumberToSymbol(z)} ; "
          f"Z= {z}. ; A= {xraylib.AtomicWeight(z):.4f} g/mole" for z in sorted(elements)]
    db = ("# GATE material database written by theradose (HU -> material, Schneider 2000 "
          "densities)\n[Elements]\n" + "\n".join(el) + "\n\n[Materials]\n"
          + "\n\n".join(materials) + "\n")
    return rows, db


# ---------------------------------------------------------------------------- sources
def _spectrum_sources(nuc: Nuclide, chain: bool, n_primaries: int) -> list[dict[str, Any]]:
    """One source per (member, particle) with counts for ``n_primaries`` parent decays."""
    members = [(m.nuclide, m.equilibrium_activity_ratio) for m in decay_chain(nuc)] if chain \
        else [(nuc.name, 1.0)]
    out: list[dict[str, Any]] = []
    for name, w in members:
        m = get_nuclide(name)
        positrons = m.yield_per_decay("beta+") > 0
        photon = [ln for ln in m.photon_lines() if not (positrons and ln.type == "annihilation")]
        groups = {
            "gamma": [(ln.energy_kev, ln.yield_per_decay) for ln in photon],
            "e-": [(ln.energy_kev, ln.yield_per_decay) for ln in m.electron_lines()],
            "alpha": [(ln.energy_kev, ln.yield_per_decay) for ln in m.alpha_lines()
                      if ln.type == "alpha"],
        }
        for particle, lines in groups.items():
            y = sum(v for _, v in lines) * w
            if y > 0:
                out.append({"name": f"{name}_{particle}_lines".replace("-", ""),
                            "member": name, "particle": particle,
                            "energy_type": "spectrum_discrete",
                            "energies_kev": [e for e, _ in lines],
                            "weights": [v for _, v in lines], "yield_per_parent_decay": y,
                            "n": round(n_primaries * y)})
        if any(m.yield_per_decay(k) > 0 for k in ("beta-", "beta+", "betaD")):
            spec = m.beta_spectrum()
            # GATE samples uniformly within a histogram bin: split each ICRP-107 interval
            # into _BETA_SUBBINS (the piecewise-linear mean is then kept to < 0.01 %)
            e0 = np.asarray(spec.energy_kev)
            e = np.concatenate([np.linspace(a, b, _BETA_SUBBINS + 1)[:-1]
                                for a, b in itertools.pairwise(e0)] + [e0[-1:]])
            d = np.interp(e, e0, np.asarray(spec.dn_de_per_kev))
            weights = 0.5 * (d[:-1] + d[1:]) * np.diff(e)  # particles per bin per decay
            particle = "e+" if spec.kind == "beta+" else "e-"
            y = float(weights.sum()) * w
            out.append({"name": f"{name}_beta".replace("-", ""), "member": name,
                        "particle": particle, "energy_type": "spectrum_histogram",
                        "bin_edges_kev": e.tolist(), "weights": weights.tolist(),
                        "yield_per_parent_decay": y, "n": round(n_primaries * y)})
    return [s for s in out if s["n"] > 0]


def _ion_source(nuc: Nuclide, n_primaries: int) -> list[dict[str, Any]]:
    import radioactivedecay as rd

    z = int(rd.Nuclide(nuc.name).Z)
    a = int(rd.Nuclide(nuc.name).A)
    return [{"name": "ion", "member": nuc.name, "particle": f"ion {z} {a}",
             "energy_type": "mono", "energies_kev": [0.0], "yield_per_parent_decay": 1.0,
             "n": int(n_primaries)}]


# ---------------------------------------------------------------------------- writer
def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"must be an integer >= 1, got {value!r}", field=field)
    return int(value)


def write_gate_simulation(ct: Volume, tia: Volume, nuclide: str | Nuclide,
                          out_dir: str | Path, *, n_primaries: int, seed: int = 0,
                          overwrite: bool = False, source: str = "spectrum",
                          chain: bool = False, threads: int = 1,
                          production_cut_mm: float = 0.1,
                          density_tolerance_g_cm3: float = 0.05) -> Path:
    """Write an OpenGATE 10 simulation of a TIA map in a CT (see the module docstring).

    Parameters
    ----------
    ct : Volume
        CT in ``HU``, ``(Z, Y, X)``.
    tia : Volume
        TIA per voxel (``MBq*h``; ``MBq*s``, ``Bq*h/mL`` converted) on the CT grid.
    nuclide : str or Nuclide
        Emitter (ICRP-107 name).
    out_dir : str or Path
        Folder to write (created; must not hold a simulation unless ``overwrite``).
    n_primaries : int
        Decays to simulate (the dose is scaled to the whole TIA afterwards).
    seed : int
        Geant4 random seed (``sim.random_seed``).
    overwrite : bool
        Replace the files of an earlier simulation in ``out_dir``.
    source : {"spectrum", "ion"}
        ICRP-107 spectra per particle type, or the Geant4 ion with radioactive decay (which
        follows the whole chain and uses Geant4's own decay data).
    chain : bool
        In ``"spectrum"`` mode, add the progeny in equilibrium (e.g. Ac-225).
    threads : int
        Geant4 threads (counts are divided among them).
    production_cut_mm : float
        Production cut in the CT (1 m in the world).
    density_tolerance_g_cm3 : float
        Largest density spread within one HU material bin.

    Returns
    -------
    Path
        The script ``out_dir/simulation.py``.

    Raises
    ------
    InputError
        Wrong unit of ``ct`` (UnitError), grids differ (GeometryMismatchError), negative or
        non-finite TIA, zero total TIA, bad counts or options.
    OutputExistsError
        If a file of the simulation exists and ``overwrite`` is False.
    """
    if not isinstance(ct, Volume) or isinstance(ct, LabelMap):
        raise InputError(f"expected a CT Volume in HU, got {type(ct).__name__}", field="ct")
    if ct.unit != "HU":
        raise UnitError(f"expected a CT in HU, got unit {ct.unit!r}", field="ct.unit")
    if not isinstance(tia, Volume) or isinstance(tia, LabelMap):
        raise InputError(f"expected a TIA Volume, got {type(tia).__name__}", field="tia")
    try:
        ct.geometry.require_same(tia.geometry, what="ct and tia")
    except InputError as exc:
        raise type(exc)(exc.detail, field="tia") from None
    tia_mbqh = np.asarray(_tia_to_mbqh(tia, tia.array, "tia"), dtype=np.float64)
    if not np.all(np.isfinite(tia_mbqh)) or np.any(tia_mbqh < 0):
        raise InputError("TIA must be finite and >= 0 MBq*h in every voxel", field="tia")
    total = float(tia_mbqh.sum())
    if not total > 0:
        raise InputError("TIA is zero everywhere: nothing to simulate", field="tia")
    n = _positive_int(n_primaries, "n_primaries")
    th = _positive_int(threads, "threads")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"must be an integer >= 0, got {seed!r}", field="seed")
    if source not in _SOURCES:
        raise InputError(f"unknown source {source!r}; accepted: {list(_SOURCES)}",
                         field="source")
    for name, v in (("production_cut_mm", production_cut_mm),
                    ("density_tolerance_g_cm3", density_tolerance_g_cm3)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v <= 0:
            raise InputError(f"must be a finite number > 0, got {v!r}", field=name)
    nuc = get_nuclide(nuclide, field="nuclide")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder", field="out_dir")
    for fname in (*GATE_FILES.values(), _RESULT, "ct.raw", "activity.raw"):
        prepare_output(out / fname, overwrite=overwrite)
    hu = np.asarray(ct.array, dtype=np.float64)
    rows, db = _material_table(float(hu.min()), float(hu.max()), float(density_tolerance_g_cm3))
    sources = _ion_source(nuc, n) if source == "ion" else _spectrum_sources(nuc, chain, n)
    spacing = list(ct.geometry.spacing_mm)
    config = {
        "theradose_version": _version("theradose"),
        "nuclide": nuc.name, "source_mode": source, "chain": bool(chain and source != "ion"),
        "n_primaries": n, "seed": int(seed), "threads": th,
        "total_tia_mbqh": total, "total_decays": total * DECAYS_PER_MBQ_H,
        "physics_list": "G4EmStandardPhysics_option4",
        "production_cut_mm": float(production_cut_mm), "world_cut_mm": 1000.0,
        "enable_decay": source == "ion",
        "size_xyz": list(ct.geometry.size_xyz), "spacing_mm": spacing,
        "geometry": ct.geometry.to_dict(), "sources": sources,
        "nuclear_data": data_source(),
        "files": GATE_FILES,
    }

    def write_image(arr: np.ndarray, key: str) -> None:
        _write_mhd(Volume(arr.astype(np.float32), ct.geometry).to_sitk(), out / GATE_FILES[key])

    write_image(hu, "ct")
    write_image(tia_mbqh, "activity")
    for key, text in (("materials", db), ("voxel_materials", json.dumps(rows, indent=1)),
                      ("config", json.dumps(config, indent=1)), ("script", _SCRIPT)):
        with atomic_path(out / GATE_FILES[key], overwrite=overwrite) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return out / GATE_FILES["script"]


def _write_mhd(image: Any, final: Path) -> None:
    """Write a MetaImage (header + .raw) under temporary names, then move both into place."""
    import SimpleITK as sitk

    tmp = final.with_name(f".{final.stem}.tmp.mhd")
    try:
        sitk.WriteImage(image, str(tmp))
        os.replace(tmp.with_suffix(".raw"), final.with_suffix(".raw"))
        lines = [f"ElementDataFile = {final.with_suffix('.raw').name}"
                 if ln.startswith("ElementDataFile") else ln
                 for ln in tmp.read_text(encoding="latin-1").splitlines()]
        tmp.write_text("\n".join(lines) + "\n", encoding="latin-1")
        os.replace(tmp, final)
    finally:
        for p in (tmp, tmp.with_suffix(".raw")):
            if p.exists():
                p.unlink()


# ---------------------------------------------------------------------------- run / read
def gate_available() -> tuple[bool, str]:
    """Whether OpenGATE 10 and its Geant4 data are installed, and a one-line reason if not.

    Looks for the ``opengate`` and ``opengate_core`` packages and the Geant4 data folder
    (``opengate_core/geant4_data`` with G4EMLOW, G4ENSDFSTATE, G4PhotonEvaporation and
    G4RadioactiveDecay) without importing them (importing opengate starts a download of the
    data when it is missing).
    """
    if importlib.util.find_spec("opengate") is None:
        return False, ("OpenGATE is not installed; install the optional extra: pip install "
                       "'theradose[mc-gate]' (opengate >= 10)")
    spec = importlib.util.find_spec("opengate_core")
    if spec is None or spec.origin is None:
        return False, "opengate_core (the Geant4 bindings of OpenGATE) is not installed"
    data = Path(spec.origin).parent / "geant4_data"
    present = {p.name for p in data.iterdir()} if data.is_dir() else set()
    missing = [p for p in _G4_DATA_PREFIXES if not any(n.startswith(p) for n in present)]
    if missing:
        return False, (f"Geant4 data missing in {data} ({', '.join(missing)}); run "
                       "'opengate_info' once on a machine with internet access to download "
                       "them (~2 GB)")
    return True, "ok"


def run_gate_simulation(out_dir: str | Path, *, timeout_s: float | None = None) -> Path:
    """Run the script written by :func:`write_gate_simulation` in a new Python process.

    Parameters
    ----------
    out_dir : str or Path
        Folder of the simulation.
    timeout_s : float, optional
        Stop the run after this many seconds.

    Returns
    -------
    Path
        ``out_dir/gate_result.json`` (read it with :func:`read_gate_dose`).

    Raises
    ------
    UnreadableFileError
        If ``out_dir`` holds no simulation.
    OptionalDependencyError
        If OpenGATE or its Geant4 data are missing (checked before starting).
    GateRunError
        If the simulation fails or times out (log in ``out_dir/gate.log``).
    """
    out = Path(out_dir)
    script = out / GATE_FILES["script"]
    if not script.is_file() or not (out / GATE_FILES["config"]).is_file():
        raise UnreadableFileError("no OpenGATE simulation here (simulation.py and "
                                  "simulation.json expected); write one with "
                                  "write_gate_simulation", file=out, field="out_dir")
    ok, why = gate_available()
    if not ok:
        raise OptionalDependencyError(why, field="opengate")
    log = out / "gate.log"
    try:
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.run([sys.executable, str(script)], cwd=out, stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise GateRunError(f"OpenGATE run timed out after {timeout_s} s; log: {log}") from None
    if proc.returncode != 0 or not (out / _RESULT).is_file():
        raise GateRunError(f"OpenGATE run failed with exit status {proc.returncode}; log: {log}")
    return out / _RESULT


def read_gate_dose(out_dir: str | Path) -> Volume:
    """Absorbed dose (Gy) for the whole TIA from a finished OpenGATE run.

    The DoseActor dose (Gy for the simulated decays) is scaled by total decays / simulated
    decays and given the geometry of the input CT; ``sigma`` is the DoseActor's relative
    uncertainty × dose (zeros where GATE wrote none).

    Raises
    ------
    UnreadableFileError
        If the result file or the dose image is missing or does not match the CT grid.
    """
    import SimpleITK as sitk

    from theradose.volume import Geometry

    out = Path(out_dir)
    res_path, cfg_path = out / _RESULT, out / GATE_FILES["config"]
    for p in (cfg_path, res_path):
        if not p.is_file():
            raise UnreadableFileError("missing; run run_gate_simulation first", file=p,
                                      field="out_dir")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        res = json.loads(res_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnreadableFileError(f"not valid JSON ({exc})", file=res_path,
                                  field="gate_result") from None
    for key in ("dose", "decays_simulated"):
        if key not in res:
            raise UnreadableFileError(f"no {key!r} entry; keys: {sorted(res)}", file=res_path,
                                      field=key)
    dose_path = out / res["dose"]
    if not dose_path.is_file():
        raise UnreadableFileError("dose image missing", file=dose_path, field="dose")
    geom = Geometry.from_dict(cfg["geometry"])
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(dose_path))).astype(np.float64)
    if arr.shape != geom.shape:
        raise UnreadableFileError(f"dose image shape {arr.shape} differs from the CT "
                                  f"{geom.shape}", file=dose_path, field="dose")
    scale = float(cfg["total_decays"]) / float(res["decays_simulated"])
    dose = arr * scale
    sigma = np.zeros_like(dose)
    unc = res.get("dose_uncertainty")
    if unc and (out / unc).is_file():
        rel = sitk.GetArrayFromImage(sitk.ReadImage(str(out / unc))).astype(np.float64)
        if rel.shape == dose.shape:
            sigma = np.abs(rel) * dose
    return Volume(dose, geom, unit="Gy", modality="OT", sigma=sigma,
                  meta={"engine": "opengate", "nuclide": cfg.get("nuclide"),
                        "n_primaries": cfg.get("n_primaries"), "seed": cfg.get("seed"),
                        "physics_list": cfg.get("physics_list")},
                  history=(f"absorbed dose (OpenGATE {res.get('opengate_version', '?')}, "
                           f"{res['decays_simulated']:.4g} decays scaled to "
                           f"{cfg['total_decays']:.4g})",))


# ---------------------------------------------------------------------------- the script
_SCRIPT = '''#!/usr/bin/env python3
"""OpenGATE 10 simulation written by theradose (see simulation.json). Run: python simulation.py

Needs opengate >= 10 and its Geant4 data. Writes the DoseActor images (dose, edep and their
uncertainties) and gate_result.json next to this file.
"""

import json
from pathlib import Path

import opengate as gate
from opengate.image import get_translation_between_images_center

HERE = Path(__file__).resolve().parent


def build(cfg):
    sim = gate.Simulation()
    sim.random_seed = cfg["seed"]
    sim.number_of_threads = cfg["threads"]
    sim.output_dir = HERE
    sim.g4_verbose = False
    m, mm, keV = gate.g4_units.m, gate.g4_units.mm, gate.g4_units.keV

    sim.world.size = [3 * m, 3 * m, 3 * m]
    sim.world.material = "G4_AIR"
    sim.volume_manager.add_material_database(str(HERE / cfg["files"]["materials"]))

    ct = sim.add_volume("Image", "ct")
    ct.image = str(HERE / cfg["files"]["ct"])
    ct.material = "G4_AIR"
    rows = json.loads((HERE / cfg["files"]["voxel_materials"]).read_text())
    ct.voxel_materials = [[lo, hi, name] for lo, hi, name in rows]

    activity = str(HERE / cfg["files"]["activity"])
    translation = get_translation_between_images_center(ct.image, activity)
    for s in cfg["sources"]:
        src = sim.add_source("VoxelSource", s["name"])
        src.attached_to = ct.name
        src.image = activity
        src.position.translation = translation
        src.particle = s["particle"]
        src.direction.type = "iso"
        src.n = max(1, round(s["n"] / cfg["threads"]))
        if s["energy_type"] == "spectrum_discrete":
            src.energy.type = "spectrum_discrete"
            src.energy.spectrum_energies = [e * keV for e in s["energies_kev"]]
            src.energy.spectrum_weights = s["weights"]
        elif s["energy_type"] == "spectrum_histogram":
            src.energy.type = "spectrum_histogram"
            src.energy.spectrum_energy_bin_edges = [e * keV for e in s["bin_edges_kev"]]
            src.energy.spectrum_weights = s["weights"]
        else:
            src.energy.mono = 0 * keV

    sim.physics_manager.physics_list_name = cfg["physics_list"]
    sim.physics_manager.enable_decay = cfg["enable_decay"]
    sim.physics_manager.set_production_cut("world", "all", cfg["world_cut_mm"] * mm)
    sim.physics_manager.set_production_cut(ct.name, "all", cfg["production_cut_mm"] * mm)

    dose = sim.add_actor("DoseActor", "dose")
    dose.attached_to = ct.name
    dose.output_filename = "gate_dose.mhd"
    dose.size = cfg["size_xyz"]
    dose.spacing = [s * mm for s in cfg["spacing_mm"]]
    dose.output_coordinate_system = "attached_to_image"
    dose.hit_type = "random"
    dose.dose.active = True
    dose.dose_uncertainty.active = True
    dose.edep_uncertainty.active = True

    stats = sim.add_actor("SimulationStatisticsActor", "stats")
    stats.track_types_flag = True
    stats.output_filename = "gate_stats.txt"
    return sim, dose, stats


def main():
    cfg = json.loads((HERE / "simulation.json").read_text())
    sim, dose, stats = build(cfg)
    sim.run(start_new_process=False)
    per_thread = [max(1, round(s["n"] / cfg["threads"])) for s in cfg["sources"]]
    # decays represented: each source's count over its yield (equal up to rounding)
    decays = [n * cfg["threads"] / s["yield_per_parent_decay"]
              for n, s in zip(per_thread, cfg["sources"])]
    result = {
        "opengate_version": getattr(gate, "__version__", "unknown"),
        "dose": Path(dose.dose.get_output_path()).name,
        "dose_uncertainty": Path(dose.dose_uncertainty.get_output_path()).name,
        "edep": Path(dose.edep.get_output_path()).name,
        "events": int(stats.counts.events),
        "decays_simulated": sum(decays) / len(decays),
        "decays_spread": (max(decays) - min(decays)) / max(decays),
    }
    (HERE / "gate_result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
'''
