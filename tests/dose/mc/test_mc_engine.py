"""MonteCarloEngine: registry, LED identities, energy conservation, σ, stopping, validation."""

from __future__ import annotations

import numpy as np
import pytest

from theradose.dose import get_engine
from theradose.dose._engine import DECAYS_PER_MBQ_H
from theradose.dose._point_kernel import KEV_TO_J
from theradose.dose.mc._engine import MonteCarloEngine
from theradose.dose.mc._phantom import VoxelPhantom
from theradose.errors import GeometryMismatchError, InputError
from theradose.volume import Geometry, LabelMap, Volume

GEO = Geometry((16, 16, 16), (4.0, 4.0, 4.0))


def _tia(value: float = 1.0, sigma: float | None = None) -> Volume:
    a = np.zeros(GEO.shape)
    a[4:12, 4:12, 4:12] = value
    return Volume(a, GEO, unit="MBq*h",
                  sigma=None if sigma is None else np.where(a > 0, sigma, 0.0))


def _labels() -> LabelMap:
    lab = np.zeros(GEO.shape, int)
    lab[4:12, 4:12, 4:12] = 1
    return LabelMap(lab, GEO, names={1: "hot"})


def test_registered():
    e = get_engine("montecarlo", n_histories=1000)
    assert isinstance(e, MonteCarloEngine) and e.options()["n_histories"] == 1000


def test_pure_beta_equals_led_hand_formula():
    """Analytic (LED hand formula): P-32 has no ICRP-107 photon line, so the MC engine is
    D = TIA·3.6e9·Δ_e·k/m with Δ_e = 694.777 keV, σ_D = σ_TIA·3.6e9·Δ_e·k/m exactly."""
    res = MonteCarloEngine(n_histories=1000).compute(_tia(2.0, 0.2), 1.04, "P-32")
    m_kg = 1.04 * 0.064 * 1e-3
    expect = 2.0 * 3.6e9 * 694.777 * 1.602176634e-16 / m_kg
    assert res.dose.array[8, 8, 8] == pytest.approx(expect, rel=1e-4)
    assert res.sigma.array[8, 8, 8] == pytest.approx(expect * 0.1, rel=1e-4)
    assert res.dose.array[0, 0, 0] == 0.0
    led = get_engine("led", photons="ignore").compute(_tia(2.0), 1.04, "P-32")
    np.testing.assert_allclose(res.dose.array, led.dose.array, rtol=1e-12)


def test_lu177_electron_part_and_photon_energy_conservation():
    """Conservation: dose − LED(electrons) is the photon part; Σ m·D_γ/(N·k) + escaped =
    analog absorbed + escaped = emitted (to the μ_en/μ_tr difference, < 0.5 %, + 3σ)."""
    tia, lab = _tia(), _labels()
    res = MonteCarloEngine(n_histories=100_000, seed=2).compute(tia, 1.0, "Lu-177",
                                                                 labels=lab)
    led = get_engine("led", photons="ignore").compute(tia, 1.0, "Lu-177")
    d_gamma = res.dose.array - led.dose.array
    assert np.all(d_gamma >= 0)
    n_dec = float(tia.array.sum()) * DECAYS_PER_MBQ_H
    e_dep = float(np.sum(d_gamma * 1.0 * GEO.voxel_volume_ml * 1e-3)) / (n_dec * KEV_TO_J)
    tr = res.provenance["transport"]
    sig = float(np.sqrt(np.sum((res.sigma.array * GEO.voxel_volume_ml * 1e-3) ** 2))) \
        / (n_dec * KEV_TO_J)
    total = e_dep + tr["escaped_kev_per_decay"]
    assert total == pytest.approx(tr["emitted_kev_per_decay"], rel=0.005 + 3 * sig / e_dep + 0.01)
    assert tr["emitted_kev_per_decay"] == pytest.approx(35.0977, rel=1e-4)  # ICRP-107
    # VOI mean: mass-weighted; its MC σ comes from the batches
    hot = res.voi_by_name("hot")
    assert hot.mass_g == pytest.approx(512 * 0.064, rel=1e-12)
    assert 0 < hot.sigma_gy < 0.02 * (hot.mean_gy - led.dose.array[8, 8, 8])
    assert res.provenance["options"]["electrons"] == "local"


def test_reproducible():
    a = MonteCarloEngine(n_histories=10_000, seed=3).compute(_tia(), 1.0, "Lu-177")
    b = MonteCarloEngine(n_histories=10_000, seed=3).compute(_tia(), 1.0, "Lu-177")
    np.testing.assert_array_equal(a.dose.array, b.dose.array)


def test_stopping_on_target_voi():
    res = MonteCarloEngine(n_histories=5_000, seed=1, target="hot", target_rel_sigma=0.01,
                           max_histories=500_000).compute(_tia(), 1.0, "Lu-177",
                                                          labels=_labels())
    tr = res.provenance["transport"]
    assert tr["target_rel_sigma_reached"] <= 0.01 and tr["n_histories"] > 5_000


def test_electrons_kernel_conserves_energy():
    """Conservation: the electron kernel redistributes energy (Lu-177 electron ranges < 2 mm,
    kernel energy fraction > 0.99 for 4 mm voxels): total dose·mass equal to local within 1 %,
    and interior voxels of a uniform block equal (uniform activity: no gradient)."""
    tia = _tia()
    common = dict(n_histories=20_000, seed=1)
    loc = MonteCarloEngine(**common).compute(tia, 1.0, "Lu-177")
    ker = MonteCarloEngine(electrons="kernel", **common).compute(tia, 1.0, "Lu-177")
    assert float(ker.dose.array.sum()) == pytest.approx(float(loc.dose.array.sum()), rel=0.01)
    assert ker.dose.array[8, 8, 8] == pytest.approx(loc.dose.array[8, 8, 8], rel=0.01)
    assert ker.provenance["electron_kernel"]["classes"] == ["electron"]


def test_phantom_options():
    tia = _tia()
    ph = VoxelPhantom.uniform(GEO, "water")
    a = MonteCarloEngine(n_histories=5_000, phantom=ph).compute(tia, 1.0, "Lu-177")
    assert a.provenance["transport"]["media"] == ["water"]
    lab = LabelMap(np.ones(GEO.shape, int), GEO, names={1: "lung"})
    b = MonteCarloEngine(n_histories=5_000, phantom=lab).compute(tia, 0.26, "Lu-177")
    assert b.provenance["transport"]["media"] == ["lung"]
    other = VoxelPhantom.uniform(Geometry((8, 8, 8), (4.0, 4.0, 4.0)), "water")
    with pytest.raises(GeometryMismatchError, match="phantom.shape") as e:
        MonteCarloEngine(n_histories=1000, phantom=other).compute(tia, 1.0, "Lu-177")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs, match", [
    (dict(electrons="transport"), "electrons: unknown electrons mode"),
    (dict(backend="jax"), "backend: unknown backend"),
    (dict(n_histories=5), "n_histories: expected an integer >= 10"),
    (dict(n_batches=1), "n_batches: expected an integer >= 2"),
    (dict(seed=-1), "seed: expected an integer >= 0"),
    (dict(target_rel_sigma=0.1), "target: target_rel_sigma needs a target"),
    (dict(target="hot", target_rel_sigma=1.5), r"target_rel_sigma: .* \(0, 1\)"),
    (dict(target=3), "target: expected a VOI name"),
    (dict(max_histories=10), "max_histories: expected an integer >= 1000000"),
    (dict(electrons="kernel", chain=True), "chain: chain=True cannot be combined"),
    (dict(phantom="water"), "phantom: expected a VoxelPhantom or a material LabelMap"),
    (dict(electron_kernel="k"), "electron_kernel: expected a VoxelKernel"),
    (dict(batch_size=0), "batch_size: expected an integer >= 1"),
])
def test_validation(kwargs, match):
    with pytest.raises(InputError, match=match) as e:
        MonteCarloEngine(**kwargs)
    assert "\n" not in str(e.value)


def test_target_not_in_labels():
    with pytest.raises(InputError, match="target: target VOI 'kidney' is not in labels"):
        MonteCarloEngine(n_histories=1000, target="kidney").compute(_tia(), 1.0, "Lu-177",
                                                                     labels=_labels())
    with pytest.raises(InputError, match="target: target VOI 'kidney'"):
        MonteCarloEngine(n_histories=1000, target="kidney").compute(_tia(), 1.0, "Lu-177")
