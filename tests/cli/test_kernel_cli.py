"""``theradose kernel`` through ``theradose.cli.main`` (in-process, cache in tmp_path)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import theradose.cli._kernel  # noqa: F401  (registers the command until cli/__init__ does)
from theradose.cli import main
from theradose.dose._point_kernel import KEV_TO_J
from theradose.nuclides import get_nuclide

S_PER_KEV_PER_G = KEV_TO_J * 1e12


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("THERADOSE_CACHE_DIR", str(tmp_path / "cache"))


def _run(capsys, argv):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


BASE = ["kernel", "--nuclide", "Po-210", "--classes", "alpha", "--samples", "4096"]


def test_json_keys_and_values(capsys, tmp_path):
    rc, out, _ = _run(capsys, [*BASE, "--voxel-mm", "4", "--json"])
    assert rc == 0
    d = json.loads(out)
    assert {"nuclide", "voxel_mm", "unit", "center", "face", "edge", "corner",
            "sum_energy_fraction"} <= set(d)
    assert d["nuclide"] == "Po-210" and d["voxel_mm"] == 4.0 and d["unit"] == "mGy/(MBq*s)"
    # local deposition of the ICRP-107 alpha energy, minus the first-order escape through the
    # faces (1.5·⟨r⟩/L, ⟨r⟩ = 0.05 mm for a uniform-in-r 0.1 mm range)
    e = get_nuclide("Po-210").energy_per_decay_kev.alpha
    assert d["center"] == pytest.approx(e / 0.064 * S_PER_KEV_PER_G * (1 - 1.5 * 0.05 / 4),
                                        rel=1e-3)
    assert d["face"] > d["edge"] > d["corner"] >= 0
    assert d["sum_energy_fraction"] == pytest.approx(1.0, rel=1e-9)
    assert list(d["shape_zyx"]) == [3, 3, 3] and d["classes"] == ["alpha"]
    assert list((tmp_path / "cache").glob("voxel-*.npz"))


def test_anisotropic_faces(capsys):
    rc, out, _ = _run(capsys, [*BASE, "--voxel-mm", "4,4,2", "--json"])
    d = json.loads(out)
    assert rc == 0 and d["voxel_mm"] == [4.0, 4.0, 2.0]
    # the z faces (4x4 mm² of a 2 mm thick voxel) receive more than the x/y faces
    assert d["face_z"] > d["face_x"] == pytest.approx(d["face_y"])
    assert d["face"] == pytest.approx((2 * d["face_x"] + 2 * d["face_y"] + 2 * d["face_z"]) / 6)


def test_out_npy_refuses_overwrite(capsys, tmp_path):
    out = tmp_path / "k.npy"
    rc, text, _ = _run(capsys, [*BASE, "--voxel-mm", "4", "--out", str(out)])
    assert rc == 0 and "center" in text and out.is_file()
    v = np.load(out)
    assert v.shape == (3, 3, 3) and v[1, 1, 1] == v.max()
    rc, _, err = _run(capsys, [*BASE, "--voxel-mm", "4", "--out", str(out)])
    assert rc == 2 and "output exists" in err and err.count("\n") == 1
    rc, _, _ = _run(capsys, [*BASE, "--voxel-mm", "4", "--out", str(out), "--overwrite"])
    assert rc == 0


def test_out_npz_full_kernel(capsys, tmp_path):
    from theradose.dose._cache import load_voxel_kernel

    out = tmp_path / "k.npz"
    rc, _, _ = _run(capsys, [*BASE, "--voxel-mm", "3", "--out", str(out), "--no-cache"])
    assert rc == 0
    k = load_voxel_kernel(out)
    assert k.nuclide == "Po-210" and k.voxel_mm == (3.0, 3.0, 3.0) and k.sigma is not None
    assert not (tmp_path / "cache").exists()  # --no-cache wrote nothing


@pytest.mark.parametrize("args,match", [
    (["--voxel-mm", "4,4"], "error: --voxel-mm: got '4,4'"),
    (["--voxel-mm", "a"], "error: --voxel-mm: got 'a'"),
    (["--voxel-mm", "-1"], "error: --voxel-mm: got '-1'"),
    (["--voxel-mm", "4", "--out", "k.txt"], "error: --out: unsupported output 'k.txt'"),
    (["--voxel-mm", "4", "--medium", "steel"], "error: --medium: 'steel' is not one of"),
    (["--voxel-mm", "4", "--classes", "beta"], "error: --classes: got 'beta'"),
    # exact integer box size: 1e9 mm wrapped around in int64 and reached np.zeros;
    # (2·ceil(1e9/4) + 1)^3 = 500000001^3 = 1.25e+26 voxels
    (["--voxel-mm", "4", "--radius-mm", "1e9"], "error: --radius-mm: kernel box too large: "
     "radius 1e+09 mm at (4, 4, 4) mm voxels needs 1.25e+26 voxels, more than 40000000"),
    # 1e308 mm: the box count (10^923 voxels) overflowed float formatting (OverflowError)
    (["--voxel-mm", "4.8", "--radius-mm", "1e308"], "error: --radius-mm: kernel box too large"),
    (["--voxel-mm", "4", "--radius-mm", "1e-9"], "error: --radius-mm: got 1e-09 mm, expected "
     "at least one voxel (4 mm)"),
    (["--voxel-mm", "4", "--radius-mm", "nan"], "error: --radius-mm: got nan, expected a "
     "positive number"),
    (["--voxel-mm", "1e9"], "error: --voxel-mm: invalid voxel size: got 1000000000.0, expected "
     "sides in [0.01, 100] mm"),
    (["--voxel-mm", "4,4,0.005"], "error: --voxel-mm: invalid voxel size"),
    (["--voxel-mm", "4", "--samples", "0"], "error: --samples: got 0, expected a positive "
     "integer"),
    (["--voxel-mm", "4", "--samples", str(2**70)], "error: --samples: got "
     "1180591620717411303424, expected at most 67108864 (2^26) points"),
    (["--voxel-mm", "4", "--seed", "-1"], "error: --seed: got -1, expected an integer in "
     "[0, 4294967295]"),
    (["--voxel-mm", "4", "--seed", str(2**32)], "error: --seed: got 4294967296, expected"),
    (["--voxel-mm", "4", "--density", "inf"], "error: --density: expected a density in "
     "[0.0001, 25] g/cm3"),
    (["--voxel-mm", "4", "--density", "1e308"], "error: --density: expected a density in "
     "[0.0001, 25] g/cm3 (air 1.2e-3, densest element 22.6), got 1e+308"),
    (["--voxel-mm", "4", "--density", "0"], "error: --density: expected a density in"),
])
def test_errors_one_line_exit_2(capsys, args, match):
    rc, _, err = _run(capsys, [*BASE, *args])
    assert rc == 2 and match in err and err.startswith("error: ") and err.count("\n") == 1


def test_unknown_nuclide(capsys):
    rc, _, err = _run(capsys, ["kernel", "--nuclide", "Xx-1", "--voxel-mm", "4"])
    assert rc == 2 and "error:" in err
