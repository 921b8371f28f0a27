"""Kernel cache (theradose.dose._cache): location, keys, atomic store, corruption, clearing."""

from __future__ import annotations

import numpy as np
import pytest

from theradose.dose import _cache
from theradose.dose._cache import (
    cache_dir,
    cache_key,
    cache_path,
    cached,
    clear_cache,
    code_fingerprint,
    load_voxel_kernel,
    save_voxel_kernel,
)
from theradose.dose._point_kernel import RadialKernel
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.errors import InputError, OutputExistsError, TheradoseWarning, UnreadableFileError


def _vk() -> VoxelKernel:
    v = np.arange(27.0).reshape(3, 3, 3)
    return VoxelKernel(values=v, voxel_mm=(1.0, 2.0, 3.0), nuclide="Lu-177", medium="water",
                       density_g_cm3=1.0, classes=("electron",), emitted_kev=147.9,
                       sigma=v * 0.01, provenance={"method": "test", "n": 3})


def _rk() -> RadialKernel:
    return RadialKernel(np.array([0.0, 1.0, 2.0]), np.array([3.0, 1.0]), 4.0, "water", 1.0,
                        ("electron",), nuclide="Lu-177", provenance={"m": "x"})


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("THERADOSE_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "theradose"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "theradose"
    monkeypatch.setenv("THERADOSE_CACHE_DIR", str(tmp_path / "td"))
    assert cache_dir() == tmp_path / "td"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_key_depends_on_every_parameter_and_data_versions(monkeypatch):
    base = {"nuclide": "Lu-177", "voxel_mm": [4.8, 4.8, 4.8], "medium": "water",
            "density_g_cm3": 1.0, "classes": ["electron", "photon"]}
    k0 = cache_key("voxel", base)
    assert k0 == cache_key("voxel", dict(reversed(list(base.items()))))  # order-independent
    assert len(k0) == 32
    for field, other in [("nuclide", "Y-90"), ("voxel_mm", [4.8, 4.8, 4.0]),
                         ("medium", "lung"), ("density_g_cm3", 1.04), ("classes", ["electron"])]:
        assert cache_key("voxel", {**base, field: other}) != k0, field
    assert cache_key("point", base) != k0
    monkeypatch.setattr(_cache, "data_versions", lambda: {"icrp107-database": "9.9"})
    assert cache_key("voxel", base) != k0


def test_unknown_kind():
    with pytest.raises(InputError, match="kind") as exc:
        cache_key("sphere", {})
    assert "\n" not in str(exc.value) and "field=kind" in str(exc.value)


def test_code_fingerprint_tracks_source():
    a = code_fingerprint(["theradose.dose._vsv"])
    assert a == code_fingerprint(["theradose.dose._vsv"]) and len(a) == 16
    assert a != code_fingerprint(["theradose.dose._cache"])
    # an absent module still gives a stable fingerprint
    assert code_fingerprint(["theradose.no_such"]) == code_fingerprint(["theradose.no_such"])


@pytest.mark.parametrize("kind,make", [("voxel", _vk), ("point", _rk)])
def test_compute_once_then_load(tmp_path, kind, make):
    calls = []

    def compute():
        calls.append(1)
        return make()

    a = cached(kind, {"x": 1}, compute, path=tmp_path)
    b = cached(kind, {"x": 1}, compute, path=tmp_path)
    assert len(calls) == 1
    assert cache_path(kind, {"x": 1}, tmp_path).is_file()
    if kind == "voxel":
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.sigma, b.sigma)
        assert b.voxel_mm == (1.0, 2.0, 3.0) and b.provenance["n"] == 3
    else:
        np.testing.assert_array_equal(a.shell_kev, b.shell_kev)
    assert not list(tmp_path.glob(".*"))  # no temporaries left


def test_cache_false_neither_reads_nor_writes(tmp_path):
    calls = []
    for _ in range(2):
        cached("voxel", {"x": 1}, lambda: calls.append(1) or _vk(), cache=False, path=tmp_path)
    assert len(calls) == 2 and not list(tmp_path.iterdir())


def test_corrupt_entry_recomputed_with_warning(tmp_path):
    f = cache_path("voxel", {"x": 2}, tmp_path)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"not a zip file")
    with pytest.warns(TheradoseWarning, match="corrupt kernel cache entry"):
        k = cached("voxel", {"x": 2}, _vk, path=tmp_path)
    assert k.values[1, 1, 1] == 13.0
    np.testing.assert_array_equal(load_voxel_kernel(f).values, _vk().values)  # repaired


def test_clear_cache(tmp_path):
    cached("voxel", {"x": 1}, _vk, path=tmp_path)
    cached("point", {"x": 1}, _rk, path=tmp_path)
    (tmp_path / "keep.txt").write_text("user file")
    assert clear_cache(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    assert clear_cache(tmp_path / "absent") == 0


def test_save_load_roundtrip_and_overwrite(tmp_path):
    p = save_voxel_kernel(_vk(), tmp_path / "k.npz")
    k = load_voxel_kernel(p)
    np.testing.assert_array_equal(k.values, _vk().values)
    assert k.classes == ("electron",) and k.emitted_kev == 147.9
    with pytest.raises(OutputExistsError, match="exists"):
        save_voxel_kernel(_vk(), p)
    save_voxel_kernel(_vk(), p, overwrite=True)


def test_load_errors_name_file_and_field(tmp_path):
    with pytest.raises(UnreadableFileError, match="cannot read") as exc:
        load_voxel_kernel(tmp_path / "missing.npz")
    assert "missing.npz" in str(exc.value) and "npz" in str(exc.value)
    bad = tmp_path / "bad.npz"
    np.savez(bad, other=np.zeros(3))
    with pytest.raises(UnreadableFileError, match="values") as exc:
        load_voxel_kernel(bad)
    assert "bad.npz: values:" in str(exc.value) and "\n" not in str(exc.value)
    nometa = tmp_path / "nometa.npz"
    np.savez(nometa, values=np.zeros((3, 3, 3)), meta=np.array('{"voxel_mm": [1, 1, 1]}'))
    with pytest.raises(UnreadableFileError, match="lacks 'nuclide'") as exc:
        load_voxel_kernel(nometa)
    assert "meta.nuclide" in str(exc.value)


def test_voxel_s_values_uses_the_cache(tmp_path, monkeypatch):
    from theradose.dose import _vsv

    n = []
    real = _vsv.voxel_s_values_from_kernel

    def counting(*a, **kw):
        n.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(_vsv, "voxel_s_values_from_kernel", counting)
    a = _vsv.voxel_s_values("Po-210", 4.0, classes=("alpha",), n_samples=1 << 10,
                            cache_dir=str(tmp_path))
    b = _vsv.voxel_s_values("Po-210", 4.0, classes=("alpha",), n_samples=1 << 10,
                            cache_dir=str(tmp_path))
    assert len(n) == 1
    np.testing.assert_array_equal(a.values, b.values)
    assert len(list(tmp_path.glob("voxel-*.npz"))) == 1
    assert len(list(tmp_path.glob("point-*.npz"))) == 1
    _vsv.voxel_s_values("Po-210", 3.0, classes=("alpha",), n_samples=1 << 10,
                        cache_dir=str(tmp_path))
    assert len(n) == 2  # another voxel size is another entry; the point kernel is reused
    assert len(list(tmp_path.glob("point-*.npz"))) == 1
