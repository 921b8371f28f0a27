"""Gas is not tissue: no activity in air-filled lumens (the trachea) of the virtual patients.

References: the template's tissue table (``FINE_REGIONS`` → ``TISSUES``: air 0.0012 g/cm³,
ICRU-46), the material classes of ``theradose.materials.hu_to_material`` (air: < −950 HU,
after Schneider et al. 2000) and conservation (activity and TIA maps sum to the kinetics'
region fractions × A0).
"""

from __future__ import annotations

import numpy as np
import pytest

from theradose.io import read_labelmap, read_nifti
from theradose.phantoms import SimulationConfig, simulate_patient
from theradose.phantoms._anatomy_template import FINE_REGIONS
from theradose.phantoms._anatomy_tissues import TISSUES
from theradose.phantoms._kinetics import (
    PatientKinetics,
    activity_map,
    agent_subtissue_weights,
    sample_kinetics,
    tia_map,
)
from theradose.phantoms._kinetics_params import AIR_NAMES, kinetic_class
from theradose.volume import Geometry, LabelMap

#: Anything lighter than this is a gas (air 0.0012 g/cm³; the lightest tissue, inflated lung,
#: is 0.26 g/cm³, ICRU-46).
GAS_DENSITY_G_CM3 = 0.01


def test_every_gas_region_of_the_template_has_no_kinetics():
    gas = {r for r, t in FINE_REGIONS.items() if TISSUES[t]["density_g_cm3"] < GAS_DENSITY_G_CM3}
    assert gas == {"trachea"}  # the template's only air-filled lumen (lungs are lung tissue)
    for r in gas:
        assert kinetic_class(r) == "air", r
    # and no tissue region is taken for air
    for r in FINE_REGIONS:
        if r not in gas:
            assert kinetic_class(r) != "air", r
    assert all(kinetic_class(n) == "air" for n in AIR_NAMES)


@pytest.mark.parametrize("name", ["psma", "sstr"])
def test_air_region_holds_nothing_and_shifts_no_tissue_draw(name):
    regions = {"liver": 1800.0, "kidney_left_cortex": 110.0, "trachea": 40.0, "body": 60000.0,
               "urinary_bladder": 200.0}
    k = sample_kinetics(name, np.random.default_rng(3), regions)
    times = np.array([0.0, 0.5, 4.0, 24.0, 168.0, 1000.0])
    for agent in ("diagnostic", "therapeutic"):
        a = k.agent(agent)
        r = next(r for r in a.regions if r.name == "trachea")
        assert r.kinetic_class == "air" and r.subtissues is None and r.blood_share == 0.0
        np.testing.assert_array_equal(k.fraction("trachea", times, agent=agent), 0.0)
        assert k.tia_h("trachea", agent=agent) == 0.0
        # the body volume is a mass / density: the lumen is not tissue, so the unlisted
        # remainder is the reference body minus the *tissue* regions (73000 mL default)
        assert a.unlisted_volume_ml == pytest.approx(73000.0 - (1800 + 110 + 60000 + 200))
        # the blood not in listed organs sits in "body": shares still sum to 1
        assert sum(r.blood_share for r in a.regions) == pytest.approx(1.0, abs=1e-12)
    # the gas region takes its random draw like a tissue region in its place (and adds no
    # class component), so the tissue regions' kinetics are those they had before gas was
    # told apart from tissue: compare with a rest-of-body region at the same sorted position
    other = dict(regions)
    other["tracheal_wall"] = other.pop("trachea")
    assert kinetic_class("tracheal_wall") == "rest"
    k2 = sample_kinetics(name, np.random.default_rng(3), other)
    for reg in ("liver", "kidney_left_cortex"):
        s1 = next(r for r in k.therapeutic.regions if r.name == reg).subtissues
        s2 = next(r for r in k2.therapeutic.regions if r.name == reg).subtissues
        assert s1 == s2, reg


def test_maps_put_no_activity_in_the_lumen_and_conserve():
    g = Geometry((12, 16, 16), (4.0, 4.0, 4.0))
    arr = np.ones(g.shape, dtype=np.uint8)  # body
    arr[2:10, 6:10, 6:10] = 2  # trachea (air)
    arr[2:10, 1:5, 1:15] = 3  # liver
    lm = LabelMap(arr, g, names={1: "body", 2: "trachea", 3: "liver"})
    vols = {n: float(lm.mask(n).sum()) * g.voxel_volume_ml for n in lm.names.values()}
    k = sample_kinetics("psma", np.random.default_rng(0), vols, regime="heterogeneous")
    w = agent_subtissue_weights(lm, np.random.default_rng(1), k, correlation_mm=8.0)
    lumen = lm.mask("trachea")
    for agent, t in (("diagnostic", 1.0), ("therapeutic", 4.0), ("therapeutic", 96.0)):
        a = activity_map(lm, w, k, t, agent=agent, a0_mbq=7400.0)
        assert np.all(a[lumen] == 0.0)
        # conservation: what the kinetics hold in the listed regions, all in tissue
        ref = sum(float(k.fraction(n, t, agent=agent)) for n in lm.names.values()) * 7400.0
        assert a.sum() == pytest.approx(ref, rel=1e-9)
        assert a[~lumen].min() > 0.0
    tm = tia_map(lm, w, k, agent="therapeutic", a0_mbq=7400.0)
    assert np.all(tm[lumen] == 0.0)


@pytest.fixture(scope="module", params=["psma", "sstr"])
def patient(request, tmp_path_factory):
    cfg = SimulationConfig(preset=request.param, voxel_mm=8.0, times_h=(4.0, 96.0),
                           n_lesions=1, noise=False, motion=False)
    return simulate_patient(tmp_path_factory.mktemp("air") / request.param, seed=11, config=cfg)


@pytest.mark.slow
def test_virtual_patient_has_no_activity_in_air(patient):
    # air = material class "air" of the noiseless CT (truth/materials.nii.gz, < -950 HU),
    # inside the body outline (label > 0): the tracheal lumen
    mat = read_labelmap(patient.truth_dir / "materials.nii.gz")
    labels = read_labelmap(patient.truth_dir / "labels.nii.gz")
    air = (mat.array == mat.labels["air"]) & (labels.array > 0)
    assert air.sum() >= 5  # not vacuous: the lumen is resolved at 8 mm
    assert np.all(labels.array[air] == labels.labels["trachea"])
    files = [f"activity_tp{i}_{t:g}h.nii.gz" for i, t in enumerate(patient.truth["times_h"], 1)]
    for f in [*files, "activity_pet.nii.gz", "tia.nii.gz"]:
        img = read_nifti(patient.truth_dir / f).array
        assert img.shape == air.shape
        assert np.all(img[air] == 0.0), f
        assert np.all(img[labels.mask("trachea")] == 0.0), f
    # truth.json agrees: zero TIA / activity for the lumen, whose mass is that of a gas
    truth = patient.truth
    tr = truth["organs"]["trachea"]
    assert tr["tia_mbq_h"] == 0.0 and tr["activity_mbq"] == [0.0, 0.0]
    assert tr["mass_g"] / tr["volume_ml"] < GAS_DENSITY_G_CM3
    # every time point of the kinetics (not only the imaged ones) keeps the lumen empty
    kin = PatientKinetics.from_dict(truth["kinetics"])
    for agent in ("diagnostic", "therapeutic"):
        assert np.all(kin.fraction("trachea", np.linspace(0, 500, 51), agent=agent) == 0.0)
    # conservation of the TIA map against the organ table, with the lumen at 0
    tia = read_nifti(patient.truth_dir / "tia.nii.gz").array
    assert float(tia.sum(dtype=np.float64)) == pytest.approx(truth["total_tia_mbq_h"], rel=1e-6)
