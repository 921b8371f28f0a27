"""Tests of the Monte Carlo emission spectrum (theradose.dose.mc._emission)."""

from __future__ import annotations

import numpy as np
import pytest

from theradose.dose.mc._emission import emission_spectrum
from theradose.errors import UnknownNuclideError
from theradose.nuclides import equilibrium_energy_per_decay, get_nuclide


@pytest.mark.parametrize("name", ["Lu-177", "I-131", "Y-90", "F-18"])
def test_energies_equal_icrp107_per_decay(name):
    # Conservation: Σ E·y of the photon lines and the electron/alpha totals are exactly the
    # ICRP-107 energies per decay by class (theradose.nuclides, checked there against ICRP-107).
    s = emission_spectrum(name)
    e = get_nuclide(name).energy_per_decay_kev
    assert s.photon_kev == pytest.approx(e.photon, rel=1e-12, abs=1e-12)
    assert s.electron_kev == pytest.approx(e.electron, rel=1e-12)
    assert s.alpha_kev == pytest.approx(e.alpha, abs=1e-12)
    assert set(s.photon_member) <= {get_nuclide(name).name}


def test_chain_equals_equilibrium_energy_per_parent_decay():
    # Ac-225 with progeny: every class equals the Bateman equilibrium sum (nuclides module).
    s = emission_spectrum("Ac-225", chain=True)
    e = equilibrium_energy_per_decay("Ac-225")
    assert s.photon_kev == pytest.approx(e.photon, rel=1e-12)
    assert s.electron_kev == pytest.approx(e.electron, rel=1e-12)
    assert s.alpha_kev == pytest.approx(e.alpha, rel=1e-12)
    assert sum(s.alpha_kev_by_member.values()) == pytest.approx(s.alpha_kev, rel=1e-12)
    assert {"Fr-221", "At-217", "Bi-213"} <= set(s.alpha_kev_by_member)


def test_sampled_energies_follow_line_yields():
    # Lu-177: the 208.4 keV line carries ~0.104 photons/decay and the 112.9 keV line ~0.062
    # (ICRP-107); sampled frequencies must follow the yields (binomial 5 sigma).
    s = emission_spectrum("Lu-177")
    rng = np.random.default_rng(1)
    n = 200_000
    e = s.sample_photon_energies(n, rng)
    p = s.photon_yield / s.photon_yield.sum()
    for target in (208.3662, 112.9498):
        i = int(np.argmin(np.abs(s.photon_energy_kev - target)))
        pi = p[s.photon_energy_kev == s.photon_energy_kev[i]].sum()
        got = np.mean(e == s.photon_energy_kev[i])
        assert abs(got - pi) < 5 * np.sqrt(pi * (1 - pi) / n)
    assert s.photons_per_decay == pytest.approx(s.photon_yield.sum())


def test_unknown_nuclide_is_a_clear_error():
    with pytest.raises(UnknownNuclideError, match="Xx-999") as exc:
        emission_spectrum("Xx-999")
    assert "\n" not in str(exc.value)
