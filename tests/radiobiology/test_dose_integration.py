"""Integration: LED dose map (theradose.dose) -> DVH -> voxel BED map -> EUD.

Reference: the LED hand formula D = Ã·N·Δ·k/m (N = 3.6e9 decays per MBq·h, k = 1.602176634e-16
J/keV, m = ρ·V) with Δ from ICRP-107 via the engine, then Dale's mono-exponential BED
(doi:10.1259/0007-1285-58-690-515).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from theradose.dose._dvh import dvh, dvh_table
from theradose.radiobiology import bed_map, bed_mono, eubed, geud
from theradose.volume import LabelMap, Volume

led = pytest.importorskip("theradose.dose._led")


def test_led_dose_to_dvh_and_bed_map():
    spacing = (4.0, 4.0, 4.0)
    tia = np.zeros((4, 4, 4))
    lab = np.zeros((4, 4, 4), dtype=np.uint8)
    tia[:2] = 50.0   # MBq·h per voxel, "kidney"
    lab[:2] = 1
    tia[2:] = 200.0  # "lesion"
    lab[2:] = 2
    tia_v = Volume.from_array(tia, spacing_mm=spacing, unit="MBq*h")
    labels = LabelMap.from_array(lab, spacing_mm=spacing, names={1: "kidney", 2: "lesion"})
    engine = led.LocalDepositionEngine(photons="ignore")
    res = engine.compute(tia_v, 1.0, "Lu-177", labels=labels)
    delta_kev = engine.energy_per_decay_kev("Lu-177")
    mass_kg = 1.0 * 0.064 * 1e-3  # 4 mm voxel: 0.064 mL at 1 g/cm3
    hand = {n: a * 3.6e9 * delta_kev * 1.602176634e-16 / mass_kg
            for n, a in (("kidney", 50.0), ("lesion", 200.0))}
    rows = {r["label"]: r for r in dvh_table(res.dose, labels)}
    for name, d in hand.items():
        assert rows[name]["mean"] == pytest.approx(d, rel=1e-6)
        assert rows[name]["D98"] == pytest.approx(d, rel=1e-6)  # uniform within the VOI
    # voxel BED with one effective rate per VOI equals the scalar closed form
    rates = np.where(lab == 1, math.log(2) / 40.0, math.log(2) / 80.0)
    ab = np.where(lab == 1, 2.6, 10.0)
    trep = np.where(lab == 1, 2.8, 1.5)
    b = bed_map(res.dose, rates, alpha_beta_gy=ab, repair_half_time_h=trep)
    hk = dvh(b, labels, "kidney")
    assert hk.quantity == "BED"
    assert hk.mean == pytest.approx(bed_mono(hand["kidney"], math.log(2) / 40, 2.6, 2.8),
                                    rel=1e-6)
    hl = dvh(b, labels, "lesion")
    assert eubed(hl, 0.35) == pytest.approx(hl.mean, rel=1e-9)  # uniform: EUBED = BED
    assert geud(hl, -10.0) == pytest.approx(hl.mean, rel=1e-9)
