"""Reference dose maps of the true TIA (theradose.phantoms._truth_dose) and the config option."""

from __future__ import annotations

import numpy as np
import pytest

from theradose.errors import InputError
from theradose.nuclides import get_nuclide
from theradose.phantoms import SimulationConfig
from theradose.phantoms._truth_dose import truth_doses
from theradose.volume import Geometry, LabelMap, Volume

KEV_J = 1.602176634e-16


def _case():
    g = Geometry((4, 4, 4), (5.0, 5.0, 5.0))
    lab = np.zeros(g.shape, dtype=np.int16)
    lab[0:2] = 1          # cortex
    lab[2:3] = 2          # medulla
    labels = LabelMap(lab, g, names={1: "kidney_cortex", 2: "kidney_medulla"})
    tia = Volume(np.where(lab > 0, 2.0, 0.0), g, unit="MBq*h")
    density = Volume(np.full(g.shape, 1.05), g, unit="g/cm3")
    organs = {"kidney": {"regions": ["kidney_cortex", "kidney_medulla"]}}
    return tia, density, labels, organs


def test_led_truth_dose_equals_hand_formula_for_merged_organ():
    # LED default: electrons local, photons by the photon kernel. Electron part by hand:
    # D_e = Ã·3.6e9·Δ_electron·e/m per voxel (ICRP-107 Δ); the photon part adds between 0 (all
    # photons escape this 48-voxel organ) and Δ_photon/Δ_electron of it (all absorbed). The
    # organ merges both regions (mass-weighted mean of equal voxels = the voxel value).
    tia, density, labels, organs = _case()
    maps, rec = truth_doses(tia, density, labels, organs, "Lu-177", ["led"])
    e = get_nuclide("Lu-177").energy_per_decay_kev
    m_kg = 1.05 * 0.125 * 1e-3  # 125 mm^3 = 0.125 mL
    d_e = 2.0 * 3.6e9 * e.electron * KEV_J / m_kg
    mean = rec["led"]["organs"]["kidney"]["mean_gy"]
    assert d_e < mean < d_e * (1.0 + e.photon / e.electron)
    assert mean < d_e * 1.05  # a 6 mL organ keeps a few % of the 208/113 keV photons
    assert rec["led"]["organs"]["kidney"]["mass_g"] == pytest.approx(48 * 1.05 * 0.125)
    assert maps["led"].unit == "Gy"
    assert maps["led"].array.max() < d_e * (1.0 + e.photon / e.electron)


def test_unknown_engine_and_config_validation():
    tia, density, labels, organs = _case()
    with pytest.raises(InputError, match="truth_dose") as exc:
        truth_doses(tia, density, labels, organs, "Lu-177", ["gate"])
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="truth_dose"):
        SimulationConfig(truth_dose=("opengate",))
    cfg = SimulationConfig(truth_dose=["led", "montecarlo"])
    assert cfg.truth_dose == ("led", "montecarlo")
    assert SimulationConfig.from_dict(cfg.to_dict()) == cfg
