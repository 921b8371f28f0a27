"""ICRP-107 nuclide data: names, half-lives, energies per decay, lines, beta spectra.

References used below:
- ICRP Publication 107 (2008), Ann. ICRP 38(3), doi:10.1016/j.icrp.2008.10.004 (the published
  tables; values quoted to the digits the publication prints).
- ENSDF evaluations as shown by NNDC NuDat 3 (independent of ICRP-107) for some gamma yields.
- AME2020 atomic masses (Wang et al., Chinese Phys. C 45 (2021) 030003,
  doi:10.1088/1674-1137/abddaf), as shipped by radioactivedecay, for energy conservation checks.
"""

import json
import math

import numpy as np
import pytest

from theradose.errors import InputError, UnknownNuclideError
from theradose.nuclides import (
    EnergyPerDecay,
    Nuclide,
    data_source,
    get_nuclide,
    list_nuclides,
    resolve_name,
)

# Half-lives as printed in ICRP-107 (d = day, h, m = minute); all labelled therapy/imaging
# nuclides the project needs. [analytic unit conversion to hours checked against these]
ICRP107_HALF_LIVES = {
    "Lu-177": (6.647, "d"),
    "Y-90": (64.10, "h"),
    "I-131": (8.0207, "d"),  # ICRP-107 value; DDEP/ENSDF now give 8.0252 d
    "Tb-161": (6.906, "d"),
    "Ac-225": (10.0, "d"),
    "Ga-68": (67.71, "m"),
    "F-18": (109.77, "m"),
    "Cu-64": (12.700, "h"),
    "Tc-99m": (6.015, "h"),
    "In-111": (2.8047, "d"),
    "Ho-166": (26.80, "h"),
    "Re-188": (17.004, "h"),
    "Pb-212": (10.64, "h"),
}
HOURS = {"h": 1.0, "d": 24.0, "m": 1.0 / 60.0}


@pytest.mark.parametrize("name", sorted(ICRP107_HALF_LIVES))
def test_required_nuclides_load_with_icrp107_half_life(name):
    value, unit = ICRP107_HALF_LIVES[name]
    nuc = get_nuclide(name)
    assert nuc.name == name
    assert nuc.half_life_h == pytest.approx(value * HOURS[unit], rel=1e-9)
    # analytic: λ = ln 2 / T½
    assert nuc.decay_constant_per_h == pytest.approx(math.log(2) / nuc.half_life_h, rel=1e-12)
    assert nuc.energy_per_decay_kev.total > 0


def test_half_lives_agree_with_radioactivedecay_for_every_nuclide():
    # independent parse of the same ICRP-107 data by radioactivedecay (year = 365.2422 d)
    import radioactivedecay as rd

    names = list_nuclides()
    assert len(names) == 1252  # ICRP-107 has 1252 radionuclides
    for n in [*names[::25], "Ra-226", "U-238", "Bi-212n"]:
        assert get_nuclide(n).half_life_h == pytest.approx(rd.Nuclide(n).half_life("h"),
                                                           rel=1e-12), n


@pytest.mark.parametrize(
    "spelling, canonical",
    [("Lu-177", "Lu-177"), ("Lu177", "Lu-177"), ("177Lu", "Lu-177"), ("lu-177", "Lu-177"),
     ("LU177", "Lu-177"), ("177-Lu", "Lu-177"), (" lu_177 ", "Lu-177"),
     ("Tc-99m", "Tc-99m"), ("99mTc", "Tc-99m"), ("Tc99M", "Tc-99m"), ("99m-Tc", "Tc-99m"),
     ("177mLu", "Lu-177m"), ("54Mn", "Mn-54"), ("Mn54", "Mn-54"), ("Bi212n", "Bi-212n"),
     ("90y", "Y-90"), ("y90", "Y-90"), ("225Ac", "Ac-225")],
)
def test_name_spellings(spelling, canonical):
    assert resolve_name(spelling) == canonical
    assert get_nuclide(spelling).name == canonical


def test_get_nuclide_is_cached_and_passes_nuclides_through():
    a = get_nuclide("Lu-177")
    assert get_nuclide("177Lu") is a
    assert get_nuclide(a) is a


@pytest.mark.parametrize(
    "bad, match",
    [("Lu-1777", r"did you mean Lu-177"), ("Lutetium", r"unknown nuclide 'Lutetium'"),
     ("Xx-999", r"not in ICRP-107"), ("", r"expected a nuclide name"),
     (177, r"expected a nuclide name such as .Lu-177., got 177")],
)
def test_unknown_nuclide_error(bad, match):
    with pytest.raises(UnknownNuclideError, match=match) as info:
        get_nuclide(bad)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("nuclide: ")
    assert info.value.field == "nuclide"
    assert isinstance(info.value, InputError) and isinstance(info.value, KeyError)


def test_unknown_nuclide_error_names_file_and_field():
    with pytest.raises(UnknownNuclideError, match=r"^study\.json: radionuclide: .*Lu-177") as info:
        get_nuclide("Lu-178x", file="study.json", field="radionuclide")
    assert info.value.file == "study.json" and "\n" not in str(info.value)


def test_lu177_energy_per_decay():
    # ICRP-107 / MIRD (RADAR) Lu-177: electrons 147.9 keV (β⁻ 133.3 + IC 13.5 + Auger 1.1),
    # photons 35.1 keV (γ 31.6 + X 3.5) per decay
    e = get_nuclide("Lu-177").energy_per_decay_kev
    assert e.electron == pytest.approx(147.9, abs=0.2)
    assert e.photon == pytest.approx(35.1, abs=0.1)
    assert e.alpha == 0.0
    assert e.by_class["beta-"] == pytest.approx(133.3, abs=0.1)
    # hand sum of the class definitions
    assert e.electron == pytest.approx(e.by_class["beta-"] + e.by_class["IE"]
                                       + e.by_class["auger"], rel=1e-12)
    assert e.total == pytest.approx(e.electron + e.photon, rel=1e-12)


def test_lu177_imaging_gammas():
    # ICRP-107 Lu-177: 112.950 keV (6.40 %) and 208.366 keV (11.0 %)
    lines = get_nuclide("Lu-177").photon_lines(min_yield=0.05)
    gammas = [ln for ln in lines if ln.type == "gamma"]
    assert [ln.energy_kev for ln in gammas] == pytest.approx([112.950, 208.366])
    assert [ln.yield_per_decay for ln in gammas] == pytest.approx([0.064, 0.110])


def test_y90_mean_beta_energy():
    # ICRP-107 Y-90: mean β⁻ energy 0.9329 MeV per decay (yield 1.0), T½ 64.10 h
    y = get_nuclide("Y-90")
    assert y.energy_per_decay_kev.by_class["beta-"] == pytest.approx(932.9, abs=0.1)
    assert y.yield_per_decay("beta-") == pytest.approx(1.0, abs=1e-6)
    assert y.energy_per_decay_kev.photon < 0.01  # Y-90 is nearly a pure β⁻ emitter


def test_gamma_yields_against_ensdf():
    # ENSDF/NuDat (independent of ICRP-107): I-131 364.49 keV 81.5(8) %,
    # In-111 171.28 keV 90.7(9) % and 245.35 keV 94.1(10) %; tolerance = the stated uncertainty
    def strongest(name, near):
        lines = get_nuclide(name).photon_lines()
        return min((ln for ln in lines if ln.type == "gamma"),
                   key=lambda ln: abs(ln.energy_kev - near))

    i131 = strongest("I-131", 364.49)
    assert i131.energy_kev == pytest.approx(364.49, abs=0.01)
    assert i131.yield_per_decay == pytest.approx(0.815, abs=0.008)
    assert strongest("In-111", 171.28).yield_per_decay == pytest.approx(0.907, abs=0.009)
    assert strongest("In-111", 245.35).yield_per_decay == pytest.approx(0.941, abs=0.010)


@pytest.mark.parametrize("name, beta_plus_yield", [("F-18", 0.9673), ("Ga-68", 0.8891),
                                                    ("Cu-64", 0.1741)])
def test_annihilation_photons_conserve_positrons(name, beta_plus_yield):
    # conservation: two 511 keV photons per positron (m_e c² = 510.999 keV; ICRP-107 uses
    # 511.0 keV). β⁺ yields: ICRP-107 (F-18 96.73 %, Ga-68 88.91 %, Cu-64 17.41 %)
    nuc = get_nuclide(name)
    assert nuc.yield_per_decay("beta+") == pytest.approx(beta_plus_yield, abs=1e-4)
    assert nuc.yield_per_decay("annihilation") == pytest.approx(
        2 * nuc.yield_per_decay("beta+"), rel=1e-4)
    assert nuc.energy_per_decay_kev.by_class["annihilation"] == pytest.approx(
        2 * 511.0 * nuc.yield_per_decay("beta+"), rel=1e-4)


def test_f18_photon_energy():
    # hand: 2 × 511.0 keV × 0.9673 = 988.6 keV; F-18 has no gammas
    assert get_nuclide("F-18").energy_per_decay_kev.photon == pytest.approx(988.6, abs=0.1)


@pytest.mark.parametrize("name", ["Lu-177", "I-131", "Tb-161", "Ac-225", "In-111", "Cu-64",
                                  "Pb-212", "Bi-212"])
def test_lines_sum_to_class_totals(name):
    # conservation: Σ energy × yield over the listed lines equals the class total
    nuc = get_nuclide(name)
    e = nuc.energy_per_decay_kev
    photon = sum(ln.energy_kev * ln.yield_per_decay for ln in nuc.photon_lines())
    alpha = sum(ln.energy_kev * ln.yield_per_decay for ln in nuc.alpha_lines())
    ce_auger = sum(ln.energy_kev * ln.yield_per_decay for ln in nuc.electron_lines())
    beta = sum(e.by_class[k] for k in ("beta-", "beta+", "betaD"))
    assert photon == pytest.approx(e.photon, rel=1e-9, abs=1e-9)
    assert alpha == pytest.approx(e.alpha, rel=1e-9, abs=1e-9)
    assert ce_auger + beta == pytest.approx(e.electron, rel=1e-9, abs=1e-9)
    if beta > 0:
        # the spectrum carries the same beta energy (trapezoid of the tabulated points, 0.5 %)
        assert nuc.beta_spectrum().energy_per_decay_kev == pytest.approx(beta, rel=5e-3)


def test_po212_alpha_energy_conservation():
    # Po-212 decays 100 % by α to the Pb-208 ground state: α + recoil = Q_α from AME2020 masses
    # (energy conservation) and E_recoil / E_α = m_α / m_Pb208 (momentum conservation)
    import radioactivedecay as rd

    u_kev = 931494.10242  # CODATA 2018 atomic mass unit, keV
    m = {n: rd.Nuclide(n).atomic_mass for n in ("Po-212", "Pb-208", "He-4")}
    q = (m["Po-212"] - m["Pb-208"] - m["He-4"]) * u_kev
    e = get_nuclide("Po-212").energy_per_decay_kev
    assert e.alpha == pytest.approx(q, abs=1.0)  # ICRP-107 vs AME2020: within 1 keV of 8954 keV
    assert e.by_class["alpha recoil"] / e.by_class["alpha"] == pytest.approx(
        m["He-4"] / m["Pb-208"], rel=1e-3)


def test_line_filters_and_types():
    lu = get_nuclide("Lu-177")
    assert all(ln.yield_per_decay >= 0.01 for ln in lu.photon_lines(min_yield=0.01))
    assert {ln.type for ln in lu.photon_lines()} == {"gamma", "X"}
    assert {ln.type for ln in lu.electron_lines()} == {"IE", "auger"}
    assert [ln.type for ln in get_nuclide("Po-212").alpha_lines()] == ["alpha recoil", "alpha"]
    high = lu.photon_lines(min_energy_kev=100.0)
    assert min(ln.energy_kev for ln in high) >= 100.0
    energies = [ln.energy_kev for ln in lu.electron_lines()]
    assert energies == sorted(energies)


@pytest.mark.parametrize("kw, field", [({"min_yield": -0.1}, "min_yield"),
                                       ({"min_energy_kev": float("nan")}, "min_energy_kev"),
                                       ({"min_yield": "a lot"}, "min_yield")])
def test_line_filter_validation(kw, field):
    with pytest.raises(InputError, match=rf"^{field}: must be a finite number >= 0") as info:
        get_nuclide("Lu-177").photon_lines(**kw)
    assert info.value.field == field and "\n" not in str(info.value)


def test_yield_per_decay_validation():
    with pytest.raises(InputError, match=r"^emission_class: unknown emission class 'gammas'"):
        get_nuclide("Lu-177").yield_per_decay("gammas")


@pytest.mark.parametrize("name, kind", [("Lu-177", "beta-"), ("Y-90", "beta-"),
                                        ("I-131", "beta-"), ("F-18", "beta+")])
def test_beta_spectrum_normalisation_and_mean(name, kind):
    # ICRP-107 mean energies: Lu-177 133.3 keV, Y-90 932.9 keV, I-131 181.9 keV, F-18 249.8 keV
    # (= 241.6 keV per decay / 0.9673); brief: spectrum mean within 1 %
    icrp_mean = {"Lu-177": 133.3, "Y-90": 932.9, "I-131": 181.9, "F-18": 249.8}[name]
    nuc = get_nuclide(name)
    s = nuc.beta_spectrum(kind)
    assert s.kind == kind
    assert s.energy_kev.shape == s.dn_de_per_kev.shape and s.energy_kev[0] == 0.0
    assert np.all(np.diff(s.energy_kev) > 0) and np.all(s.dn_de_per_kev >= 0)
    assert np.trapezoid(s.dn_de_per_kev, s.energy_kev) == pytest.approx(
        nuc.yield_per_decay(kind), rel=1e-12)
    assert s.mean_energy_kev == pytest.approx(icrp_mean, rel=0.01)
    assert nuc.beta_spectrum().kind == kind  # None = the only kind present
    assert not s.energy_kev.flags.writeable


def test_beta_spectrum_endpoint_y90():
    # Y-90 β⁻ endpoint 2280.1 keV (ICRP-107; ENSDF 2278.7(16) keV): last node with density 0
    s = get_nuclide("Y-90").beta_spectrum()
    assert s.energy_kev[-1] == pytest.approx(2279, abs=2)
    assert s.dn_de_per_kev[-1] == 0.0


def test_beta_spectrum_sampling_mean():
    # statistical: mean of 200 000 samples within 4 standard errors of the spectrum mean
    s = get_nuclide("Lu-177").beta_spectrum()
    x = s.sample(200_000, np.random.default_rng(7))
    assert x.min() >= 0 and x.max() <= s.energy_kev[-1]
    assert x.mean() == pytest.approx(s.mean_energy_kev, abs=4 * x.std() / math.sqrt(x.size))
    same = s.sample(10, np.random.default_rng(7))
    assert np.array_equal(same, s.sample(10, np.random.default_rng(7)))
    with pytest.raises(InputError, match=r"^n: n must be an integer >= 0, got -1"):
        s.sample(-1, np.random.default_rng(0))


def test_beta_spectrum_mixed_and_missing():
    cu = get_nuclide("Cu-64")
    both = cu.beta_spectrum()
    # ICRP-107 Cu-64: β⁻ 0.390 + β⁺ 0.1741 per decay in one combined spectrum
    assert both.kind == "beta-,beta+"
    assert both.yield_per_decay == pytest.approx(0.390 + 0.1741, abs=2e-4)
    with pytest.raises(InputError, match=r"^kind: ICRP-107 gives one combined spectrum for "
                                         r"beta-, beta\+ of Cu-64; use kind=None"):
        cu.beta_spectrum("beta-")
    with pytest.raises(InputError, match=r"^kind: In-111 emits no betas \(it emits no betas\)"):
        get_nuclide("In-111").beta_spectrum()
    with pytest.raises(InputError, match=r"^kind: Lu-177 emits no beta\+ particles "
                                         r"\(it emits beta-\)"):
        get_nuclide("Lu-177").beta_spectrum("beta+")
    with pytest.raises(InputError, match=r"^kind: unknown beta kind 'electron'"):
        get_nuclide("Lu-177").beta_spectrum("electron")


def test_energy_per_decay_arithmetic():
    a = EnergyPerDecay.from_by_class({"beta-": 100.0, "gamma": 10.0, "alpha": 5000.0,
                                      "neutron": 7.0, "fission": 9.0})
    # hand: totals by the class definitions; neutrons and fission fragments are in no total
    assert (a.electron, a.photon, a.alpha, a.neutron, a.total) == (100.0, 10.0, 5000.0, 7.0,
                                                                  5110.0)
    b = a.scaled(0.5) + a
    assert (b.electron, b.photon, b.alpha) == (150.0, 15.0, 7500.0)
    assert b.by_class["fission"] == 13.5


def test_to_dict_is_json_serialisable():
    d = get_nuclide("Lu-177").to_dict()
    back = json.loads(json.dumps(d))
    assert back["nuclide"] == "Lu-177"
    assert back["half_life_h"] == pytest.approx(6.647 * 24)
    assert back["energy_per_decay_kev"]["electron"] == pytest.approx(147.9, abs=0.2)
    assert {"type", "energy_kev", "yield"} == set(back["lines"]["photon"][0])
    assert back["source"] == data_source()


def test_data_source_names_versions():
    from importlib.metadata import version

    src = data_source()
    assert src.startswith("ICRP Publication 107 (2008) via icrp107-database ")
    assert version("icrp107-database") in src and version("radioactivedecay") in src


def test_nuclide_is_frozen():
    lu = get_nuclide("Lu-177")
    assert isinstance(lu, Nuclide)
    with pytest.raises(AttributeError):
        lu.half_life_h = 1.0  # type: ignore[misc]
