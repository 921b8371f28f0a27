"""Alpha emitters: chain energies, LED hand formula, RBE, redistribution, σ, validation."""

from __future__ import annotations

import numpy as np
import pytest

from theradose.dose._engine import get_engine
from theradose.dose._led import LocalDepositionEngine
from theradose.dose._point_kernel import KEV_TO_J
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.dose.mc._alpha import (
    AlphaDoseEngine,
    Redistribution,
    alpha_dose,
    chain_coefficients,
    member_tia_maps,
)
from theradose.errors import InputError
from theradose.nuclides import equilibrium_energy_per_decay, get_nuclide
from theradose.volume import LabelMap, Volume

KEV_J = 1.602176634e-16  # CODATA 2018 (exact)
N_MBQH = 3.6e9  # decays in 1 MBq·h


def vol(a, spacing=(10.0, 10.0, 10.0), unit="MBq*h"):
    return Volume.from_array(np.asarray(a, dtype=float), spacing_mm=spacing, unit=unit)


def one_line(exc, field):
    msg = str(exc.value)
    assert "\n" not in msg and field in msg, msg
    assert exc.value.field == field


def photon_kernel(nuclide, value_center, value_side, spacing=(10.0, 10.0, 10.0)):
    """3×3×3 photon kernel: S at the centre and at the 6 face neighbours (mGy/(MBq·s))."""
    v = np.zeros((3, 3, 3))
    v[1, 1, 1] = value_center
    for ax in range(3):
        for s in (0, 2):
            idx = [1, 1, 1]
            idx[ax] = s
            v[tuple(idx)] = value_side
    return VoxelKernel(v, spacing, nuclide, "water", 1.0, ("photon",), 1.0)


# ---------------------------------------------------------------------------- chain energies
def test_ac225_chain_energy_equals_equilibrium_energy_per_decay():
    # Conservation: without redistribution, Σ_i r_i·Δ_i of the members equals the Bateman
    # equilibrium energy per parent decay of theradose.nuclides, class by class.
    r = alpha_dose(vol(np.ones((1, 1, 1))), 1.0, "Ac-225", photons="local")
    e = equilibrium_energy_per_decay("Ac-225")
    site = r.provenance["energy_per_parent_decay_kev"]["site"]
    assert site["alpha"] == pytest.approx(e.alpha, rel=1e-12)
    assert site["electron"] == pytest.approx(e.electron, rel=1e-12)
    assert site["photon"] == pytest.approx(e.photon, rel=1e-12)
    assert 27_900 < e.alpha < 28_100  # ≈ 28.0 MeV: four alphas (Ac, Fr, At, Po-213/Bi-213)


def test_alpha_led_hand_formula_and_led_engine():
    # analytic: 1 MBq·h of Ac-225 (+ progeny) in 1 g: D_α = 3.6e9 × 28029.2 keV × k / 1e-3 kg
    e = equilibrium_energy_per_decay("Ac-225")
    expected = N_MBQH * e.alpha * KEV_J / 1e-3
    assert expected == pytest.approx(16.167, rel=1e-4)
    tia = np.zeros((3, 3, 3))
    tia[1, 1, 1] = 1.0
    r = alpha_dose(vol(tia), 1.0, "Ac-225", photons="ignore")
    assert r.components["alpha"].array[1, 1, 1] == pytest.approx(expected, rel=1e-12)
    assert np.count_nonzero(r.dose.array) == 1  # alphas and electrons stay in the voxel
    # independent implementation: the LED engine with equilibrium energies, density 2 g/cm³
    rho = vol(np.full((3, 3, 3), 2.0), unit="g/cm3")
    r2 = alpha_dose(vol(tia), rho, "Ac-225", photons="local")
    led = LocalDepositionEngine(photons="local", equilibrium=True).compute(vol(tia), rho,
                                                                           "Ac-225")
    np.testing.assert_allclose(r2.absorbed.array, led.dose.array, rtol=1e-12)
    assert r2.dose.array[1, 1, 1] == pytest.approx(N_MBQH * e.total * KEV_J / 2e-3, rel=1e-12)


def test_pb212_branches_vs_icrp107_hand_sums():
    # ICRP-107 (icrp107-database): alpha + recoil keV per decay of Bi-212 2216.36 (its 35.94 %
    # alpha branch), Po-212 8954.13; Bi-212 → Po-212 64.06 % (β⁻), → Tl-208 35.94 % (α).
    names, loc, _ = chain_coefficients("Pb-212", ratio="branching")
    assert names == ["Pb-212", "Bi-212", "Po-212", "Tl-208"]
    assert loc["Bi-212"] == pytest.approx(1.0, abs=1e-12)
    assert loc["Po-212"] == pytest.approx(0.6406, abs=1e-9)
    assert loc["Tl-208"] == pytest.approx(0.3594, abs=1e-9)
    assert get_nuclide("Bi-212").energy_per_decay_kev.alpha == pytest.approx(2216.36, abs=0.01)
    assert get_nuclide("Po-212").energy_per_decay_kev.alpha == pytest.approx(8954.13, abs=0.01)
    r = alpha_dose(vol(np.ones((1, 1, 1))), 1.0, "Pb-212", photons="ignore", ratio="branching")
    hand = 2216.36 + 0.6406 * 8954.13  # = 7952.3 keV of alphas per Pb-212 decay
    assert r.provenance["energy_per_parent_decay_kev"]["site"]["alpha"] == pytest.approx(
        hand, abs=0.02)
    # equilibrium: r_Bi = T_Pb / (T_Pb − T_Bi) = 10.64 h / (10.64 − 1.00917 h) = 1.10478
    _, leq, _ = chain_coefficients("Pb-212")
    assert leq["Bi-212"] == pytest.approx(10.64 / (10.64 - 1.0091667), rel=1e-5)
    assert leq["Po-212"] == pytest.approx(0.6406 * leq["Bi-212"], rel=1e-6)  # τ(Po) = 0.3 µs


def test_ra223_chain_is_supported():
    # Ra-223 chain energies equal the equilibrium sum too (≈ 26.9 MeV of alphas per decay).
    r = alpha_dose(vol(np.ones((1, 1, 1))), 1.0, "Ra-223", photons="ignore")
    e = equilibrium_energy_per_decay("Ra-223")
    assert r.provenance["energy_per_parent_decay_kev"]["site"]["alpha"] == pytest.approx(
        e.alpha, rel=1e-12)
    assert r.provenance["members"][:3] == ["Ra-223", "Rn-219", "Po-215"]


# ---------------------------------------------------------------------------- RBE
def test_rbe_weighting_arithmetic():
    # D_RBE = RBE_α·D_α + D_e + D_γ (MIRD Pamphlet 22); default RBE_α = 5
    tia = np.array([[[1.0, 3.0]]])
    r = alpha_dose(vol(tia), 1.0, "Ac-225", photons="local")
    c = {k: v.array for k, v in r.components.items()}
    np.testing.assert_allclose(r.rbe_weighted.array,
                               5 * c["alpha"] + c["electron"] + c["photon"], rtol=1e-12)
    np.testing.assert_allclose(r.dose.array, c["alpha"] + c["electron"] + c["photon"],
                               rtol=1e-12)
    r3 = alpha_dose(vol(tia), 1.0, "Ac-225", rbe_alpha=3.0, dose_quantity="rbe_weighted")
    np.testing.assert_allclose(r3.dose.array, 3 * c["alpha"] + c["electron"] + c["photon"],
                               rtol=1e-12)
    assert alpha_dose(vol(tia), 1.0, "Ac-225", rbe_alpha=None).rbe_weighted is None


# ---------------------------------------------------------------------------- redistribution
def test_redistribution_conserves_decays_of_every_member():
    # Conservation: L_i + Σ_s T^s_i = r_i; member maps + decays outside = r_i × ΣÃ_p
    rng = np.random.default_rng(3)
    tia = vol(rng.random((3, 4, 5)))
    rho = vol(rng.uniform(0.05, 2.0, (3, 4, 5)), unit="g/cm3")
    mask = np.zeros((3, 4, 5), bool)
    mask[0, :2] = True
    rules = [Redistribution("Fr-221", 0.2, "whole_body"),
             Redistribution("Bi-213", 0.3, mask), Redistribution("Tl-209", 0.5, "outside")]
    ct = member_tia_maps(tia, "Ac-225", density=rho, redistribution=rules)
    _, full, _ = chain_coefficients("Ac-225")
    total = float(tia.array.sum())
    for n, m in ct.maps.items():
        assert m.unit == "MBq*h"
        assert float(m.array.sum()) + ct.outside_mbqh[n] == pytest.approx(full[n] * total,
                                                                          rel=1e-12)
    assert ct.outside_mbqh["Tl-209"] > 0 and ct.outside_mbqh["Fr-221"] == 0
    # whole body = voxels ≥ 0.1 g/cm³; weights ∝ mass
    w = ct.weights[0]
    body = rho.array >= 0.1
    assert np.all(w[~body] == 0)
    np.testing.assert_allclose(w[body] / rho.array[body], (w[body] / rho.array[body])[0])
    # energy conservation of the dose: Σ m·D = Σ (decays × keV) with photons local
    r = alpha_dose(tia, rho, "Ac-225", redistribution=rules, photons="local")
    mass_kg = rho.array * 1e-3  # 1 mL voxels
    deposited = float(np.sum(r.dose.array * mass_kg))
    emitted = sum(float(m.array.sum()) * get_nuclide(n).energy_per_decay_kev.total
                  for n, m in ct.maps.items()) * N_MBQH * KEV_J
    assert deposited == pytest.approx(emitted, rel=1e-10)


def test_redistribution_to_voi_hand_calculation():
    # All Fr-221 atoms (and progeny) leave the source voxel for the 'kidneys' voxel: the source
    # keeps the Ac-225 alphas only; the kidney voxel gets Σ_{i≠Ac} r_i·α_i (hand sums).
    tia = np.array([[[2.0, 0.0]]])
    lab = LabelMap.from_array(np.array([[[0, 1]]], np.uint8), spacing_mm=(10,) * 3,
                              names={1: "kidneys"})
    r = alpha_dose(vol(tia), 1.0, "Ac-225", photons="ignore", labels=lab,
                   redistribution=Redistribution("Fr-221", 1.0, "kidneys"))
    _, full, _ = chain_coefficients("Ac-225")
    a_ac = get_nuclide("Ac-225").energy_per_decay_kev.alpha
    a_rest = sum(full[n] * get_nuclide(n).energy_per_decay_kev.alpha for n in full
                 if n != "Ac-225")
    k = N_MBQH * KEV_J / 1e-3  # Gy per (MBq·h·keV) in 1 g
    assert r.components["alpha"].array[0, 0, 0] == pytest.approx(2 * a_ac * k, rel=1e-12)
    assert r.components["alpha"].array[0, 0, 1] == pytest.approx(2 * a_rest * k, rel=1e-12)
    kid = r.voi_by_name("kidneys")
    assert kid.mean_gy == pytest.approx(r.dose.array[0, 0, 1], rel=1e-12)
    assert r.voi_components["alpha"][0].mean_gy == pytest.approx(2 * a_rest * k, rel=1e-12)
    assert r.voi_components["rbe_weighted"][0].mean_gy == pytest.approx(
        r.rbe_weighted.array[0, 0, 1], rel=1e-12)
    assert r.to_dict()["voi_components"]["alpha"][0]["name"] == "kidneys"


def test_downstream_rule_applies_to_atoms_still_at_the_site():
    # Fr-221 50 % released, then Bi-213 30 % of what stays: local Bi-213 = 0.5·0.7·r_Bi
    _, loc, moved = chain_coefficients(
        "Ac-225", [Redistribution("Fr-221", 0.5), Redistribution("Bi-213", 0.3)])
    _, full, _ = chain_coefficients("Ac-225")
    assert loc["Bi-213"] == pytest.approx(0.5 * 0.7 * full["Bi-213"], rel=1e-12)
    assert moved[1]["Bi-213"] == pytest.approx(0.5 * 0.3 * full["Bi-213"], rel=1e-12)
    assert moved[0]["Bi-213"] == pytest.approx(0.5 * full["Bi-213"], rel=1e-12)


# ---------------------------------------------------------------------------- photons, σ
def test_photon_kernel_per_member_and_sigma_vs_jacobian():
    # Photon dose = f·Σ_i decays_i ⊛ K_i·3.6 (definition); σ map and VOI σ = brute-force
    # Jacobian of the (linear) engine, with redistribution and density correction.
    kernels = {"Pb-212": photon_kernel("Pb-212", 2.0, 0.5),
               "Bi-212": photon_kernel("Bi-212", 1.0, 0.25),
               "Tl-208": photon_kernel("Tl-208", 4.0, 1.0)}
    rules = [Redistribution("Bi-212", 0.4, "liver")]
    rng = np.random.default_rng(7)
    shape = (2, 3, 3)
    rho = vol(rng.uniform(0.5, 1.5, shape), unit="g/cm3")
    lab_arr = np.zeros(shape, np.uint8)
    lab_arr[1, 2, :] = 1
    lab_arr[0, 0, :2] = 2
    lab = LabelMap.from_array(lab_arr, spacing_mm=(10,) * 3, names={1: "liver", 2: "tumour"})
    eng = AlphaDoseEngine(rules, photons="kernel", photon_kernels=kernels,
                          precision="float64")
    # single source voxel, no redistribution: neighbour photon dose by hand
    t1 = np.zeros(shape)
    t1[0, 1, 1] = 1.0
    r1 = AlphaDoseEngine(photons="kernel", photon_kernels=kernels,
                         precision="float64").compute(vol(t1), rho, "Pb-212")
    _, full, _ = chain_coefficients("Pb-212")
    side = 3.6 * (full["Pb-212"] * 0.5 + full["Bi-212"] * 0.25 + full["Tl-208"] * 1.0)
    assert r1.components["photon"].array[1, 1, 1] == pytest.approx(
        side / rho.array[1, 1, 1], rel=1e-9)
    tia = rng.random(shape)
    sig = rng.uniform(0.05, 0.3, shape)
    r = eng.compute(vol(tia), rho, "Pb-212", labels=lab, tia_sigma=vol(sig))

    def dose_of(a):
        return eng.compute(vol(a), rho, "Pb-212", labels=lab).dose.array

    n = tia.size
    jac = np.empty((n, n))
    for s in range(n):
        e = np.zeros(n)
        e[s] = 1.0
        jac[:, s] = dose_of(e.reshape(shape)).ravel()
    np.testing.assert_allclose(r.dose.array.ravel(), jac @ tia.ravel(), rtol=1e-9)
    s2 = sig.ravel() ** 2
    np.testing.assert_allclose(r.sigma.array.ravel(), np.sqrt((jac ** 2) @ s2), rtol=1e-9)
    mass = rho.array.ravel() * 1.0
    for v in r.voi:
        m = np.where(lab_arr.ravel() == v.label, mass, 0.0)
        g = m @ jac / m.sum()
        assert v.sigma_gy == pytest.approx(float(np.sqrt(np.sum(g ** 2 * s2))), rel=1e-9)


def test_registered_as_alpha_engine():
    eng = get_engine("alpha", photons="ignore", rbe_alpha=2.0)
    assert isinstance(eng, AlphaDoseEngine) and eng.options()["rbe_alpha"] == 2.0


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, field, match", [
    ({"photons": "mc"}, "photons", "unknown photons mode"),
    ({"dose_quantity": "x"}, "dose_quantity", "unknown dose_quantity"),
    ({"dose_quantity": "rbe_weighted", "rbe_alpha": None}, "dose_quantity", "needs rbe_alpha"),
    ({"ratio": "x"}, "ratio", "unknown ratio"),
    ({"rbe_alpha": -1}, "rbe_alpha", "finite number > 0"),
    ({"body_threshold_g_cm3": 0}, "body_threshold_g_cm3", "finite number > 0"),
    ({"photon_kernels": [1]}, "photon_kernels", "expected a mapping"),
    ({"photon_kernels": {"Bi-212": 1}, "photons": "kernel"}, "photon_kernels['Bi-212']",
     "photon-only"),
    ({"photon_kernels": {"Pb-212": None}}, "photon_kernels['Pb-212']", "photon-only"),
    ({"vsv_options": 3}, "vsv_options", "expected a mapping"),
    ({"redistribution": "Bi-213"}, "redistribution", "expected a Redistribution"),
    ({"redistribution": [1]}, "redistribution[0]", "expected a Redistribution"),
    ({"precision": "float16"}, "precision", "unknown precision"),
])
def test_engine_options_validation(kwargs, field, match):
    with pytest.raises(InputError, match=match) as exc:
        AlphaDoseEngine(**kwargs)
    one_line(exc, field)


def test_photon_kernels_only_with_kernel_mode():
    with pytest.raises(InputError, match="only used with photons='kernel'") as exc:
        AlphaDoseEngine(photon_kernels={"Pb-212": photon_kernel("Pb-212", 1, 0)})
    one_line(exc, "photon_kernels")


@pytest.mark.parametrize("args, field, match", [
    (("Bi-213", 1.5), "redistribution.fraction", r"in \[0, 1\]"),
    (("Bi-213", "x"), "redistribution.fraction", r"in \[0, 1\]"),
    (("Bi-213", 0.1, 3), "redistribution.target", "got int"),
    (("Bi-213", 0.1, " "), "redistribution.target", "must not be empty"),
])
def test_redistribution_validation(args, field, match):
    with pytest.raises(InputError, match=match) as exc:
        Redistribution(*args)
    one_line(exc, field)


@pytest.mark.parametrize("rules, field, match", [
    ([Redistribution("Lu-177", 0.1)], "redistribution[0].member", "not a member"),
    ([Redistribution("Xx-1", 0.1)], "redistribution[0].member", "not a member"),
    ([Redistribution("Ac-225", 0.1)], "redistribution[0].member", "parent"),
    ([Redistribution("Bi-213", 0.1), Redistribution("Bi-213", 0.2)],
     "redistribution[1].member", "two redistribution rules"),
])
def test_chain_rule_validation(rules, field, match):
    with pytest.raises(InputError, match=match) as exc:
        chain_coefficients("Ac-225", rules)
    one_line(exc, field)


def test_chain_ratio_validation():
    with pytest.raises(InputError, match="unknown ratio") as exc:
        chain_coefficients("Ac-225", ratio="secular")
    one_line(exc, "ratio")


def test_target_validation():
    tia = vol(np.ones((1, 1, 2)))
    lab = LabelMap.from_array(np.array([[[0, 1]]], np.uint8), spacing_mm=(10,) * 3,
                              names={1: "liver"})
    cases = [
        ("kidneys", None, "needs labels="),
        ("kidneys", lab, "no VOI named 'kidneys'"),
        (np.ones((2, 2, 2), bool), None, "mask shape"),
        (np.zeros((1, 1, 2), bool), None, "has no mass"),
        (Volume.from_array(np.ones((1, 1, 2)), spacing_mm=(5, 5, 5)), None, "different grids"),
    ]
    for target, labels, match in cases:
        with pytest.raises(InputError, match=match) as exc:
            member_tia_maps(tia, "Ac-225", labels=labels,
                            redistribution=Redistribution("Bi-213", 0.5, target))
        one_line(exc, "redistribution[0].target")
    with pytest.raises(InputError, match="has no mass"):  # whole body of air
        member_tia_maps(tia, "Ac-225", density=0.001,
                        redistribution=Redistribution("Bi-213", 0.5))


def test_photon_kernel_densities_must_agree():
    k2 = photon_kernel("Bi-212", 1, 0)
    k2 = VoxelKernel(k2.values, k2.voxel_mm, "Bi-212", "cortical_bone", 1.85, ("photon",), 1.0)
    eng = AlphaDoseEngine(photons="kernel", photon_kernels={
        "Pb-212": photon_kernel("Pb-212", 1, 0), "Bi-212": k2,
        "Tl-208": photon_kernel("Tl-208", 1, 0)})
    with pytest.raises(InputError, match="different densities") as exc:
        eng.compute(vol(np.ones((1, 1, 1))), 1.0, "Pb-212")
    one_line(exc, "photon_kernels")


def test_kernel_energy_constant_is_consistent():
    # KEV_TO_J used by the engine is the CODATA exact value used in these hand formulas
    assert KEV_TO_J == KEV_J
