"""Kernel convolution engine: conservation, delta response, linearity, density, heterogeneity."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_fixtures import check_one_line, jacobian_sigma, synthetic_kernel, vol

from theradose.dose._convolution import FFTConvolver, KernelConvolutionEngine
from theradose.dose._led import LocalDepositionEngine
from theradose.errors import GeometryMismatchError, InputError
from theradose.volume import LabelMap, Volume

# ICRP-107 Lu-177 energy per decay (keV): electrons 147.92, photons 35.10
LU_E = 147.92313516289383


def _k(**kw):
    return synthetic_kernel(LU_E, **kw)


def test_fft_convolver_matches_direct_sum():
    # independent reference: the convolution sum written out with loops
    rng = np.random.default_rng(0)
    a = rng.random((4, 5, 6))
    k = rng.random((3, 5, 3))
    direct = np.zeros_like(a)
    for z, y, x in np.ndindex(a.shape):
        for dz, dy, dx in np.ndindex(k.shape):
            sz, sy, sx = z - (dz - 1), y - (dy - 2), x - (dx - 1)
            if 0 <= sz < 4 and 0 <= sy < 5 and 0 <= sx < 6:
                direct[z, y, x] += a[sz, sy, sx] * k[dz, dy, dx]
    conv = FFTConvolver(a.shape, k.shape, dtype="float64")
    np.testing.assert_allclose(conv.convolve(a, k), direct, rtol=1e-12, atol=1e-13)
    f32 = FFTConvolver(a.shape, (5, 5, 5), dtype="float32")  # kernel padded to a larger box
    np.testing.assert_allclose(f32.convolve(a, k), direct, rtol=1e-5, atol=1e-5)


def test_uniform_activity_equals_led():
    # issue acceptance: uniform activity filling a large volume → LED of the absorbed classes
    # (< 1 %; here float32 FFT error only, since energy_fraction = 1 by construction)
    k = _k(shape=(7, 7, 7), width=1.3)
    assert k.energy_fraction == pytest.approx(1.0, rel=1e-12)
    tia = vol(np.full((15, 15, 15), 2.5))
    r = KernelConvolutionEngine(kernel=k).compute(tia, 1.0, "Lu-177")
    led = LocalDepositionEngine(photons="ignore").compute(tia, 1.0, "Lu-177")
    c = led.dose.array[7, 7, 7]
    assert c == pytest.approx(2.5 * 3.6e9 * LU_E * 1.602176634e-16 / 0.064e-3, rel=1e-12)
    assert r.dose.array[7, 7, 7] == pytest.approx(c, rel=1e-5)
    # every voxel at least 3 voxels from the edge is "inside the infinite medium"
    np.testing.assert_allclose(r.dose.array[3:-3, 3:-3, 3:-3], c, rtol=1e-5)
    # energy conservation: Σ m·D = energy of the decays absorbed within the image (all but the
    # part escaping the edges) ≤ emitted energy
    assert (r.dose.array.sum() * 0.064e-3) < led.dose.array.sum() * 0.064e-3


def test_delta_source_reproduces_kernel_anisotropic():
    spacing = (2.0, 3.0, 4.0)  # x, y, z
    k = _k(voxel_mm=spacing, shape=(3, 5, 7), asymmetric=True)
    tia = np.zeros((7, 9, 11))
    tia[3, 4, 5] = 1.0
    r = KernelConvolutionEngine(kernel=k, precision="float64").compute(vol(tia, spacing), 1.0,
                                                                       "Lu-177")
    # D(v) = Ã K(v - s): the kernel appears around the source, same orientation [z, y, x],
    # S in mGy/(MBq·s) × 3.6 = Gy per MBq·h
    np.testing.assert_allclose(r.dose.array[2:5, 2:7, 2:9], 3.6 * k.values, rtol=1e-10,
                               atol=1e-14)
    assert r.dose.array.sum() == pytest.approx(3.6 * k.values.sum(), rel=1e-10)


def test_linearity():
    rng = np.random.default_rng(3)
    a1, a2 = rng.random((6, 7, 8)), rng.random((6, 7, 8))
    eng = KernelConvolutionEngine(kernel=_k(), precision="float64")
    rho = vol(rng.uniform(0.5, 2.0, a1.shape), unit="g/cm3")
    d = [eng.compute(vol(a), rho, "Lu-177").dose.array for a in (a1, a2, 2 * a1 - 3 * a2)]
    np.testing.assert_allclose(d[2], 2 * d[0] - 3 * d[1], rtol=1e-9, atol=1e-12 * d[0].max())


def test_density_correction_halves_dose_at_double_density():
    tia = vol(np.ones((5, 5, 5)))
    rho = np.ones((5, 5, 5))
    rho[2, 2, 2] = 2.0
    rho[0, 0, 0] = 0.0
    eng = KernelConvolutionEngine(kernel=_k(), precision="float64")
    d1 = eng.compute(tia, 1.0, "Lu-177").dose.array
    d2 = eng.compute(tia, vol(rho, unit="g/cm3"), "Lu-177").dose.array
    # D × ρ_kernel / ρ_voxel (Dieudonné 2013): same energy, twice the mass
    assert d2[2, 2, 2] == pytest.approx(d1[2, 2, 2] / 2, rel=1e-12)
    assert d2[0, 0, 0] == 0.0  # no mass, no dose
    assert d2[1, 1, 1] == pytest.approx(d1[1, 1, 1], rel=1e-12)
    off = KernelConvolutionEngine(kernel=_k(), density_correction=False, precision="float64")
    assert off.compute(tia, vol(rho, unit="g/cm3"), "Lu-177").dose.array[2, 2, 2] == \
        pytest.approx(d1[2, 2, 2], rel=1e-12)


def test_heterogeneity_single_class_equals_plain():
    rng = np.random.default_rng(4)
    tia = vol(rng.random((6, 6, 6)))
    rho = vol(rng.uniform(0.8, 1.2, (6, 6, 6)), unit="g/cm3")
    k = _k()
    plain = KernelConvolutionEngine(kernel=k).compute(tia, rho, "Lu-177").dose.array
    het = KernelConvolutionEngine(heterogeneity={"water": (0.0, np.inf)}, kernels={"water": k}
                                  ).compute(tia, rho, "Lu-177")
    np.testing.assert_array_equal(het.dose.array, plain)


def test_heterogeneity_two_classes_by_hand():
    # multiple VSVs (Lee 2018): each voxel takes the convolution with its own class's kernel,
    # density-corrected with that kernel's density; checked against direct sums
    kw = _k(shape=(3, 3, 3), medium="soft_tissue")
    kl = synthetic_kernel(LU_E, shape=(5, 5, 5), width=1.5, medium="lung", density=0.26)
    rng = np.random.default_rng(5)
    a = rng.random((5, 5, 5))
    rho = np.full((5, 5, 5), 1.0)
    rho[:, :, :2] = 0.3  # lung-like
    eng = KernelConvolutionEngine(heterogeneity=True, precision="float64",
                                  kernels={"soft_tissue": kw, "lung": kl})
    r = eng.compute(vol(a), vol(rho, unit="g/cm3"), "Lu-177")

    def direct(k, v):
        n = k.values.shape[0] // 2
        tot = 0.0
        for s in np.ndindex(a.shape):
            d = tuple(vi - si + n for vi, si in zip(v, s, strict=True))
            if all(0 <= x < k.values.shape[0] for x in d):
                tot += a[s] * k.values[d] * 3.6
        return tot

    for v in [(2, 2, 0), (1, 3, 1), (2, 2, 2), (4, 0, 4)]:
        k = kl if rho[v] < 0.63 else kw
        assert r.dose.array[v] == pytest.approx(direct(k, v) * k.density_g_cm3 / rho[v],
                                                rel=1e-10)
    meds = sorted(x["medium"] for x in r.provenance["kernels"])
    assert meds == ["lung", "soft_tissue"]


def test_heterogeneity_materials_labelmap():
    k_st = _k(medium="soft_tissue")
    k_lung = synthetic_kernel(LU_E, medium="lung", density=0.26, width=1.5)
    mat = np.full((4, 4, 4), 4, np.uint8)  # soft_tissue
    mat[:2] = 2  # lung
    materials = LabelMap.from_array(mat, spacing_mm=(4.0,) * 3,
                                    names={2: "lung", 4: "soft_tissue"})
    rng = np.random.default_rng(6)
    tia = vol(rng.random((4, 4, 4)))
    eng = KernelConvolutionEngine(heterogeneity="materials", precision="float64",
                                  kernels={"soft_tissue": k_st, "lung": k_lung})
    r = eng.compute(tia, 1.0, "Lu-177", materials=materials)
    plain_l = KernelConvolutionEngine(kernel=k_lung, precision="float64").compute(
        tia, 1.0, "Lu-177").dose.array
    plain_s = KernelConvolutionEngine(kernel=k_st, precision="float64").compute(
        tia, 1.0, "Lu-177").dose.array
    np.testing.assert_allclose(r.dose.array[:2], plain_l[:2], rtol=1e-12)
    np.testing.assert_allclose(r.dose.array[2:], plain_s[2:], rtol=1e-12)
    # the map can also be given to the constructor (pipeline configs)
    eng2 = KernelConvolutionEngine(heterogeneity="materials", precision="float64",
                                   kernels={"soft_tissue": k_st, "lung": k_lung},
                                   materials=materials)
    np.testing.assert_array_equal(eng2.compute(tia, 1.0, "Lu-177").dose.array, r.dose.array)
    with pytest.raises(InputError, match="needs a materials LabelMap") as ei:
        eng.compute(tia, 1.0, "Lu-177")
    check_one_line(ei, "materials")
    bad = LabelMap.from_array(mat, spacing_mm=(4.0,) * 3, names={2: "lung", 4: "steel"})
    with pytest.raises(InputError, match="has no medium") as ei:
        eng.compute(tia, 1.0, "Lu-177", materials=bad)
    check_one_line(ei, "material_media")


def test_sigma_map_and_voi_sigma_match_brute_force():
    rng = np.random.default_rng(7)
    shape = (4, 4, 3)
    tia, sig = rng.uniform(0.5, 1.5, shape), rng.uniform(0.05, 0.3, shape)
    rho = rng.uniform(0.2, 1.8, shape)
    voi = np.zeros(shape, np.uint8)
    voi[1:3, 1:, :] = 1
    labels = LabelMap.from_array(voi, spacing_mm=(4.0,) * 3, names={1: "t"})
    kl = synthetic_kernel(LU_E, medium="lung", density=0.26, width=1.4)
    eng = KernelConvolutionEngine(heterogeneity=True, precision="float64",
                                  kernels={"soft_tissue": _k(medium="soft_tissue"), "lung": kl,
                                           "cortical_bone": _k(medium="cortical_bone",
                                                               density=1.85, width=0.6)})
    rv = vol(rho, unit="g/cm3")
    r = eng.compute(vol(tia), rv, "Lu-177", labels=labels, tia_sigma=vol(sig))

    def lin(a):
        return eng.compute(vol(a), rv, "Lu-177").dose.array

    # independent reference: explicit Jacobian, σ² = Σ_s J_vs² σ_s² (voxel and VOI mean)
    sig_ref, voi_ref = jacobian_sigma(lin, tia, sig, rho * 0.064, voi == 1)
    np.testing.assert_allclose(r.sigma.array, sig_ref, rtol=1e-9)
    assert r.voi[0].sigma_gy == pytest.approx(voi_ref, rel=1e-9)
    # "independent" is the quadrature sum of voxel σ: smaller than the exact (positively
    # correlated voxel doses)
    ind = KernelConvolutionEngine(kernel=_k(), voi_sigma="independent").compute(
        vol(tia), rv, "Lu-177", labels=labels, tia_sigma=vol(sig))
    ex = KernelConvolutionEngine(kernel=_k()).compute(vol(tia), rv, "Lu-177", labels=labels,
                                                      tia_sigma=vol(sig))
    assert ind.voi[0].sigma_gy < ex.voi[0].sigma_gy
    assert ind.voi[0].mean_gy == pytest.approx(ex.voi[0].mean_gy, rel=1e-12)


def test_kernel_generated_for_image_spacing(monkeypatch):
    import theradose.dose._vsv as vsv

    calls = []

    def fake(nuclide, voxel_mm, **kw):
        calls.append((nuclide, voxel_mm, kw))
        return _k(voxel_mm=voxel_mm)

    monkeypatch.setattr(vsv, "voxel_s_values", fake, raising=False)
    eng = KernelConvolutionEngine(medium="soft_tissue")
    eng.compute(vol(np.ones((3, 3, 3)), (4.8, 4.8, 4.8)), 1.0, "Lu-177")
    eng.compute(vol(np.ones((3, 3, 3)), (4.8, 4.8, 4.8)), 1.0, "Lu-177")  # reused
    eng.compute(vol(np.ones((3, 3, 3)), (3.0, 3.0, 3.0)), 1.0, "Lu-177")  # new spacing
    # photon_correction="kerma" (default): one charged-particle and one photon-only kernel,
    # each scaled by its own rule (theradose.dose._scaling)
    kc = {"medium": "soft_tissue", "classes": ("electron", "alpha")}
    kp = {"medium": "soft_tissue", "classes": ("photon",)}
    assert calls == [("Lu-177", (4.8, 4.8, 4.8), kc), ("Lu-177", (4.8, 4.8, 4.8), kp),
                     ("Lu-177", (3.0, 3.0, 3.0), kc), ("Lu-177", (3.0, 3.0, 3.0), kp)]
    calls.clear()
    KernelConvolutionEngine(medium="soft_tissue", photon_correction="density").compute(
        vol(np.ones((3, 3, 3)), (4.8, 4.8, 4.8)), 1.0, "Lu-177")
    kw = {"medium": "soft_tissue", "classes": ("electron", "photon", "alpha")}
    assert calls == [("Lu-177", (4.8, 4.8, 4.8), kw)]


def test_provenance_and_to_dict_are_json():
    import json

    r = KernelConvolutionEngine(kernel=_k()).compute(vol(np.ones((3, 3, 3))), 1.0, "Lu-177")
    d = json.loads(json.dumps(r.to_dict()))
    assert d["engine"] == "kernel" and d["unit"] == "Gy"
    assert d["provenance"]["kernels"][0]["energy_fraction"] == pytest.approx(1.0)
    assert "ICRP" in d["provenance"]["nuclear_data"]


@pytest.mark.parametrize(("kwargs", "field", "match"), [
    ({"medium": "steel"}, "medium", "unknown medium"),
    ({"kernel": np.ones((3, 3, 3))}, "kernel", "VoxelKernel"),
    ({"heterogeneity": "yes"}, "heterogeneity", "accepted"),
    ({"heterogeneity": 3}, "heterogeneity", "mapping"),
    ({"heterogeneity": {}}, "heterogeneity", "empty"),
    ({"heterogeneity": {"lung": (0.5, 0.1)}}, "heterogeneity.lung", "lo < hi"),
    ({"heterogeneity": {"lung": "low"}}, "heterogeneity.lung", "interval"),
    ({"heterogeneity": {"lung": (0, 1), "water": (0.5, 2)}}, "heterogeneity", "overlap"),
    ({"heterogeneity": {"steel": (0, 1)}}, "medium", "unknown medium"),
    ({"material_media": {"lung": 3}}, "material_media.lung", "medium name"),
    ({"voi_sigma": "approx"}, "voi_sigma", "accepted"),
    ({"classes": ("beta",)}, "classes", "values of"),
    ({"classes": ()}, "classes", "values of"),
    ({"vsv_options": 3}, "vsv_options", "mapping"),
    ({"precision": "half"}, "precision", "accepted"),
    ({"workers": "2"}, "workers", ">= 1"),
])
def test_constructor_validation(kwargs, field, match):
    with pytest.raises(InputError, match=match) as ei:
        KernelConvolutionEngine(**kwargs)
    check_one_line(ei, field)


def test_kernel_mismatch_errors():
    tia = vol(np.ones((3, 3, 3)), (4.8, 4.8, 4.8))
    with pytest.raises(GeometryMismatchError, match="differs from the image spacing") as ei:
        KernelConvolutionEngine(kernel=_k()).compute(tia, 1.0, "Lu-177")
    check_one_line(ei, "kernel.voxel_mm")
    with pytest.raises(InputError, match="kernel is for 'I-131'") as ei:
        KernelConvolutionEngine(kernel=_k(nuclide="I-131")).compute(vol(np.ones((3, 3, 3))),
                                                                    1.0, "Lu-177")
    check_one_line(ei, "kernel.nuclide")
    eng = KernelConvolutionEngine(heterogeneity=True, kernels={"lung": _k(voxel_mm=(5, 5, 5))})
    rho = vol(np.full((3, 3, 3), 0.3), unit="g/cm3")
    with pytest.raises(GeometryMismatchError) as ei:
        eng.compute(vol(np.ones((3, 3, 3))), rho, "Lu-177")
    check_one_line(ei, "kernels.lung.voxel_mm")
    bad_mat = LabelMap.from_array(np.ones((3, 3, 2), np.uint8), spacing_mm=(4, 4, 4),
                                  names={1: "lung"})
    with pytest.raises(GeometryMismatchError) as ei:
        KernelConvolutionEngine(heterogeneity="materials", kernels={"lung": _k()}).compute(
            vol(np.ones((3, 3, 3))), 1.0, "Lu-177", materials=bad_mat)
    check_one_line(ei, "materials.shape")
    with pytest.raises(InputError, match="LabelMap") as ei:
        KernelConvolutionEngine(heterogeneity="materials").compute(
            vol(np.ones((3, 3, 3))), 1.0, "Lu-177", materials=np.ones((3, 3, 3)))
    check_one_line(ei, "materials")


def test_fft_convolver_rejects_oversized_kernel():
    conv = FFTConvolver((4, 4, 4), (3, 3, 3), dtype="float64")
    with pytest.raises(InputError, match="exceeds") as ei:
        conv.convolve(np.ones((4, 4, 4)), np.ones((5, 5, 5)))
    check_one_line(ei, "kernel")


@pytest.mark.slow
def test_real_lu177_electron_kernel_uniform_equals_led(tmp_path, monkeypatch):
    # integration with the project's own kernels ((E) electron transport → (V) VSV): uniform
    # Lu-177 in water at 4.8 mm; issue acceptance: convolution = LED of the same classes < 1 %
    # (the generated kernel absorbs 99.9 % of the electron energy within 20 mm)
    monkeypatch.setenv("THERADOSE_CACHE_DIR", str(tmp_path))
    eng = KernelConvolutionEngine(classes=("electron",),
                                  vsv_options={"n_samples": 1 << 14, "radius_mm": 20.0})
    tia = vol(np.ones((13, 13, 13)), (4.8, 4.8, 4.8))
    r = eng.compute(tia, 1.0, "Lu-177")
    (k,) = r.provenance["kernels"]
    assert k["classes"] == ["electron"] and k["shape_zyx"] == [11, 11, 11]
    led = LocalDepositionEngine(photons="ignore").compute(tia, 1.0, "Lu-177")
    assert r.dose.array[6, 6, 6] == pytest.approx(led.dose.array[6, 6, 6], rel=0.01)
    assert r.dose.array[6, 6, 6] == pytest.approx(led.dose.array[6, 6, 6] * k["energy_fraction"],
                                                  rel=1e-4)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(8)
    tia = rng.random((5, 5, 5)).astype(np.float32)
    sig = (0.1 * tia).astype(np.float32)
    rho = rng.uniform(0.2, 1.9, (5, 5, 5))
    copies = [a.copy() for a in (tia, sig, rho)]
    labels = LabelMap.from_array(np.ones((5, 5, 5), np.uint8), spacing_mm=(4.0,) * 3,
                                 names={1: "all"})
    kernels = {m: _k(medium=m) for m in ("lung", "soft_tissue", "cortical_bone")}
    for eng in (KernelConvolutionEngine(kernel=_k()),
                KernelConvolutionEngine(heterogeneity=True, kernels=kernels),
                LocalDepositionEngine(photons="kernel",
                                      photon_kernel=synthetic_kernel(35.1,
                                                                     classes=("photon",)))):
        # Volumes built without copies, so the engines see the caller's float32 arrays
        r = eng.compute(Volume.from_array(tia, spacing_mm=(4.0,) * 3, unit="MBq*h"),
                        Volume.from_array(rho, spacing_mm=(4.0,) * 3, unit="g/cm3"), "Lu-177",
                        labels=labels,
                        tia_sigma=Volume.from_array(sig, spacing_mm=(4.0,) * 3, unit="MBq*h"))
        assert np.all(np.isfinite(r.dose.array))
    for a, c in zip((tia, sig, rho), copies, strict=True):
        np.testing.assert_array_equal(a, c)
