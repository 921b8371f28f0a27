"""Tests of the virtual-patient anatomy (theradose.phantoms._anatomy*)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import ndimage

from theradose.errors import InputError, TheradoseWarning
from theradose.materials import hu_to_density
from theradose.phantoms._anatomy import random_anatomy, reference_phantom
from theradose.phantoms._anatomy_lesions import add_lesions
from theradose.phantoms._anatomy_template import FINE_REGIONS
from theradose.phantoms._anatomy_tissues import TISSUES

# ICRP Publication 89 (2002), Table 2.8, reference adult male / female masses (g), typed here
# independently of the package table. Heart = heart tissue (wall) only; blood in the heart
# separately; lungs with their blood; parotid and submandibular glands as pairs.
ICRP89 = {
    "male": {"liver": 1800, "kidneys": 310, "spleen": 150, "lungs": 1200, "heart": 330,
             "heart_blood_pool": 510, "urinary_bladder_wall": 50, "parotid_glands": 50,
             "submandibular_glands": 25, "red_marrow": 1170, "brain": 1450,
             "thyroid_gland": 20, "pancreas": 140, "prostate": 17, "testes": 35},
    "female": {"liver": 1400, "kidneys": 275, "spleen": 130, "lungs": 950, "heart": 250,
               "heart_blood_pool": 370, "urinary_bladder_wall": 40, "parotid_glands": 40,
               "submandibular_glands": 20, "red_marrow": 900, "brain": 1300,
               "thyroid_gland": 17, "pancreas": 120, "uterus": 80, "ovaries": 11},
}
# ICRP-89 reference whole-body masses (kg): 73 (male), 60 (female).
BODY_KG = {"male": 73.0, "female": 60.0}


@pytest.fixture(scope="module")
def male():
    return reference_phantom("adult_male", voxel_mm=3.0)


@pytest.fixture(scope="module")
def female():
    return reference_phantom("adult_female", voxel_mm=3.0)


def _centroid_mm(a, name):
    m = a.organ_mask(name)
    kk, jj, ii = np.nonzero(m)
    return a.geometry.index_to_physical(np.array([ii.mean(), jj.mean(), kk.mean()]))


def _one_line_names(exc, field):
    msg = str(exc.value)
    assert "\n" not in msg
    assert field in msg


# ------------------------------------------------------------------ reference masses (ICRP-89)
@pytest.mark.parametrize("sex", ["male", "female"])
def test_reference_masses_within_3_percent_of_icrp89(sex, male, female):
    a = male if sex == "male" else female
    for organ, ref in ICRP89[sex].items():
        assert a.masses_g[organ] == pytest.approx(ref, rel=0.03), organ
    # lacrimal glands: 0.7 g each (adult autopsy value; not in ICRP-89)
    assert a.masses_g["lacrimal_glands"] == pytest.approx(1.4, rel=0.05)
    # urinary bladder content: 200 mL of urine at 1.02 g/cm3 (MIRD/ORNL bladder)
    assert a.masses_g["urinary_bladder_content"] == pytest.approx(204.0, rel=0.03)


@pytest.mark.parametrize("sex", ["male", "female"])
def test_total_body_mass_is_icrp89_reference(sex, male, female):
    a = male if sex == "male" else female
    total = a.params["total_body_mass_g"] / 1000
    assert total == pytest.approx(BODY_KG[sex], rel=0.03)
    # the field of view (head to mid-thigh) holds most but not all of it
    assert 0.75 * total < a.params["mass_in_fov_g"] / 1000 < total


def test_masses_equal_density_integral(male):
    # conservation: ∫ density dV over the grid = Σ fine-region masses + mass of the air, where
    # the air volume is the grid volume minus Σ (region mass / tissue density)
    vvol = male.geometry.voxel_volume_ml
    integral = float(male.density.array.astype(np.float64).sum()) * vvol
    fine = sum(male.masses_g[n] for n in male.region_names())
    tissue_vol = sum(male.masses_g[n] / TISSUES[FINE_REGIONS[n]]["density_g_cm3"]
                     for n in male.region_names() if FINE_REGIONS[n] != "air")
    trachea_vol = male.masses_g["trachea"] / TISSUES["air"]["density_g_cm3"]
    air_vol = male.density.array.size * vvol - tissue_vol - trachea_vol
    expected = fine - male.masses_g["trachea"] + (air_vol + trachea_vol) * 0.0012
    assert integral == pytest.approx(expected, rel=1e-4)


def test_label_volume_agrees_with_sub_voxel_mass(male):
    # majority labels vs sub-voxel fractions: same volume within 3 % for big organs
    vvol = male.geometry.voxel_volume_ml
    for organ, rho in (("liver", 1.06), ("spleen", 1.06), ("brain", 1.04)):
        vol_labels = male.organ_mask(organ).sum() * vvol
        assert vol_labels * rho == pytest.approx(male.masses_g[organ], rel=0.03)


# ------------------------------------------------------------------ labels, groups, geometry
def test_groups_partition_and_names(male, female):
    for a in (male, female):
        names = a.region_names()
        assert len(names) == len(set(names))
        assert set(names) <= set(FINE_REGIONS)
        seen: dict[str, str] = {}
        for g, members in a.groups.items():
            assert g not in names  # a group is never named like a region
            for m in members:
                assert m in names
                assert m not in seen, f"{m} in {seen.get(m)} and {g}"
                seen[m] = g
            union = np.zeros(a.labels.shape, bool)
            for m in members:
                union |= a.labels.mask(m)
            np.testing.assert_array_equal(a.organ_mask(g), union)
            assert a.masses_g[g] == pytest.approx(sum(a.masses_g[m] for m in members))
    assert "prostate" in male.region_names() and "prostate" not in female.region_names()
    assert "uterus" in female.region_names()
    assert male.groups["kidney_left"] == ("kidney_left_cortex", "kidney_left_medulla")
    assert set(male.groups["blood"]) >= {"heart_blood_pool", "aorta", "inferior_vena_cava"}


def test_kidney_cortex_is_about_70_percent(male):
    # cortex ≈ 70-75 % of renal mass (our medulla ellipsoid: 0.62³ of the kidney ellipsoid)
    frac = male.masses_g["kidney_left_cortex"] / male.masses_g["kidney_left"]
    assert 0.65 < frac < 0.8


def test_geometry_is_lps_with_z_superior(male):
    g = male.geometry
    np.testing.assert_allclose(g.direction, np.eye(3))
    assert g.spacing_mm == (3.0, 3.0, 3.0)
    # the template origin (base of the trunk, mid-line) lies inside the grid
    ijk = g.physical_to_index([0.0, 0.0, 0.0])
    assert all(0 <= v < n for v, n in zip(ijk, g.size_xyz, strict=True))
    assert male.labels.array[0].any() and not male.labels.array[-1].any()  # thigh; air above head
    json.dumps(male.params)  # JSON-serialisable


def test_organ_positions_anatomically_ordered(male):
    c = {n: _centroid_mm(male, n) for n in (
        "liver", "spleen", "heart", "urinary_bladder", "kidney_left", "kidney_right", "brain",
        "parotid_gland_left", "parotid_gland_right", "thyroid_gland", "lung_left", "lung_right",
        "prostate", "lacrimal_gland_left")}
    assert c["liver"][0] < 0 < c["spleen"][0]  # liver on the patient's right (-x in LPS)
    assert c["lung_right"][0] < 0 < c["lung_left"][0]
    assert c["kidney_right"][0] < 0 < c["kidney_left"][0]
    assert c["parotid_gland_right"][0] < 0 < c["parotid_gland_left"][0]
    assert c["heart"][2] > c["liver"][2]  # heart above the liver
    trunk = ("liver", "spleen", "heart", "kidney_left", "kidney_right")
    assert all(c["urinary_bladder"][2] < c[n][2] for n in trunk)  # bladder lowest
    assert c["prostate"][2] < c["urinary_bladder"][2]
    for k in ("kidney_left", "kidney_right"):  # kidneys posterior (+y) of the liver centre
        assert c[k][1] > c["liver"][1]
    assert c["brain"][2] > c["parotid_gland_left"][2] > c["thyroid_gland"][2] > c["heart"][2]
    assert c["lacrimal_gland_left"][1] < c["brain"][1]  # lacrimal glands anterior
    # head structures lie inside the skull's z range (above the neck)
    assert c["parotid_gland_left"][2] > 0.75 * male.params["fov_mm"]["z"][1]


# ------------------------------------------------------------------ CT numbers and density
def test_tissue_hu_maps_back_to_density_with_schneider():
    for name, t in TISSUES.items():
        rho = float(hu_to_density(t["hu"]))
        assert rho == pytest.approx(t["density_g_cm3"], rel=0.02), name


def test_pure_voxels_follow_schneider(male):
    lab = male.labels.array
    pure = ndimage.minimum_filter(lab, size=3) == ndimage.maximum_filter(lab, size=3)
    pure &= lab > 0
    rho = hu_to_density(male.hu.array[pure])
    np.testing.assert_allclose(rho, male.density.array[pure], rtol=0.02)


def test_partial_volume_mixes_hu_and_density_with_the_same_fraction(male):
    # at a liver / body boundary voxel deep in muscle (away from the subcutaneous and visceral
    # fat): HU = HU_m + f (HU_l - HU_m), ρ = ρ_m + f (ρ_l - ρ_m)
    lab = male.labels.array
    liver, body = male.labels.labels["liver"], male.labels.labels["body"]
    only = np.isin(lab, [liver, body])
    region = ndimage.minimum_filter(only.astype(np.uint8), size=3).astype(bool)
    mixed = region & (ndimage.maximum_filter(lab, size=3) == liver) & (
        ndimage.minimum_filter(np.where(only, lab, 255), size=3) == min(liver, body))
    comp = male.params["body_composition"]
    h = male.geometry.spacing_mm[0]
    wrapped = np.isin(lab, [male.labels.labels[n] for n in comp["envelope"]
                            if n in male.labels.labels])
    mixed &= ndimage.distance_transform_edt(lab > 0, sampling=h) > comp["subcutaneous_mm"] + 2 * h
    mixed &= ndimage.distance_transform_edt(~wrapped, sampling=h) > comp["visceral_mm"] + 2 * h
    hu_b, hu_l = TISSUES["muscle"]["hu"], TISSUES["liver"]["hu"]
    rb, rl = TISSUES["muscle"]["density_g_cm3"], TISSUES["liver"]["density_g_cm3"]
    hu = male.hu.array[mixed].astype(float)
    rho = male.density.array[mixed].astype(float)
    partial = (hu > hu_b + 0.5) & (hu < hu_l - 0.5)
    assert partial.sum() > 50  # boundary voxels with HU strictly between the two tissues
    f_hu = (hu[partial] - hu_b) / (hu_l - hu_b)
    f_rho = (rho[partial] - rb) / (rl - rb)
    np.testing.assert_allclose(f_hu, f_rho, atol=2e-3)
    assert np.all((hu >= hu_b - 1e-3) & (hu <= hu_l + 1e-3))


# ------------------------------------------------------------------ body composition
# ICRP-89 Table 2.8 adipose tissue and skeletal muscle (kg), typed here independently.
ICRP89_ADIPOSE_KG = {"male": 18.2, "female": 22.5}
ICRP89_MUSCLE_KG = {"male": 29.0, "female": 17.5}


@pytest.mark.parametrize("sex", ["male", "female"])
def test_body_composition_follows_icrp89(sex, male, female):
    a = male if sex == "male" else female
    comp = a.params["body_composition"]
    # the subcutaneous thickness was chosen for the adipose mass (a regression check) ...
    assert comp["adipose_g"] / 1000 == pytest.approx(ICRP89_ADIPOSE_KG[sex], rel=0.02)
    # ... the rest of the body region is not fitted: muscle plus skin, connective tissue and
    # vessels, so at least ICRP-89's skeletal muscle and not much more
    assert ICRP89_MUSCLE_KG[sex] <= comp["muscle_g"] / 1000 <= 1.1 * ICRP89_MUSCLE_KG[sex]
    assert a.masses_g["body"] == pytest.approx(comp["adipose_g"] + comp["muscle_g"], rel=1e-9)
    # volume of the body tissue x its mean density = its mass
    mean_rho = a.masses_g["body"] / comp["body_tissue_ml"]
    assert TISSUES["adipose"]["density_g_cm3"] < mean_rho < TISSUES["muscle"]["density_g_cm3"]


def test_fat_outlines_the_kidneys_and_lies_under_the_skin(male):
    # CT contrast a registration can use: perirenal fat around the kidneys, subcutaneous fat
    # under the skin, muscle in between (ICRU-46 densities, Schneider 2000 HU)
    lab, hu = male.labels.array, male.hu.array
    h = male.geometry.spacing_mm[0]
    body = lab == male.labels.labels["body"]
    kidney = np.isin(lab, [male.labels.labels[n] for n in ("kidney_left_cortex",
                                                            "kidney_right_cortex")])
    d_kid = ndimage.distance_transform_edt(~kidney, sampling=h)
    d_skin = ndimage.distance_transform_edt(lab > 0, sampling=h)
    fat_hu, mus_hu = TISSUES["adipose"]["hu"], TISSUES["muscle"]["hu"]
    ring = body & (d_kid > h + 0.1) & (d_kid <= 6.0) & (d_skin > 40)
    assert np.median(hu[ring]) == pytest.approx(fat_hu, abs=1.0)
    under_skin = body & (d_skin > h + 0.1) & (d_skin <= 12.0)
    assert np.median(hu[under_skin]) == pytest.approx(fat_hu, abs=1.0)
    deep = body & (d_skin > 40) & (d_kid > 30)
    assert np.median(hu[deep]) == pytest.approx(mus_hu, abs=1.0)
    assert mus_hu - fat_hu > 100.0


def test_heavier_patient_carries_more_subcutaneous_fat():
    a = random_anatomy(np.random.default_rng(1), sex="male", height_cm=175.0, weight_kg=110.0,
                       voxel_mm=6.0)
    b = random_anatomy(np.random.default_rng(1), sex="male", height_cm=175.0, weight_kg=60.0,
                       voxel_mm=6.0)
    ca, cb = a.params["body_composition"], b.params["body_composition"]
    assert ca["subcutaneous_mm"] > cb["subcutaneous_mm"]
    assert ca["adipose_g"] / a.params["total_body_mass_g"] > \
        cb["adipose_g"] / b.params["total_body_mass_g"]


# ------------------------------------------------------------------ random anatomy
def test_random_anatomy_is_deterministic():
    a = random_anatomy(np.random.default_rng(5), voxel_mm=6.0)
    b = random_anatomy(np.random.default_rng(5), voxel_mm=6.0)
    c = random_anatomy(np.random.default_rng(6), voxel_mm=6.0)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    np.testing.assert_array_equal(a.hu.array, b.hu.array)
    assert a.params == b.params
    assert a.params != c.params
    assert a.hu.shape != c.hu.shape or not np.array_equal(a.hu.array, c.hu.array)


def test_random_anatomy_follows_height_and_weight():
    a = random_anatomy(np.random.default_rng(1), sex="male", height_cm=190.0, weight_kg=110.0,
                       voxel_mm=6.0)
    b = random_anatomy(np.random.default_rng(1), sex="male", height_cm=160.0, weight_kg=55.0,
                       voxel_mm=6.0)
    # body mass tracks the requested weight (transverse scale ∝ sqrt(W / H))
    assert a.params["total_body_mass_g"] / 1000 == pytest.approx(110.0, rel=0.06)
    assert b.params["total_body_mass_g"] / 1000 == pytest.approx(55.0, rel=0.06)
    # z extent scales with height: 190/160 between the two FOVs (same template fraction)
    za, zb = (np.diff(x.params["fov_mm"]["z"])[0] for x in (a, b))
    assert za / zb == pytest.approx(190.0 / 160.0, rel=0.03)
    assert a.masses_g["liver"] > b.masses_g["liver"]
    assert a.params["sex"] == "male" and a.params["random"] is True
    json.dumps(a.params)


# ------------------------------------------------------------------ lesions
def test_lesions_inside_host_with_requested_volume(male):
    rng = np.random.default_rng(3)
    sites = ("liver", "bone", "lymph_node", "prostate_bed")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        les = add_lesions(male, rng, n=8, sites=sites, volume_ml_range=(2.0, 20.0))
    skipped = sum(issubclass(x.category, TheradoseWarning) for x in w)
    soft = ("body", "small_bowel", "colon")
    hosts = {"liver": male.organ_mask("liver"), "bone": male.organ_mask("skeleton"),
             "lymph_node": np.isin(male.labels.array, [male.labels.labels[n] for n in soft]),
             "prostate_bed": male.labels.mask("body") | male.labels.mask("prostate")}
    info = les.params["lesions"]
    assert len(info) + skipped == 8 and len(info) >= 6
    assert les.groups["lesions"] == tuple(f"lesion_{i}" for i in range(1, len(info) + 1))
    assert {d["site"] for d in info} == set(sites)
    vvol = male.geometry.voxel_volume_ml
    for d in info:
        m = les.organ_mask(d["name"])
        assert np.all(hosts[d["site"]][m]), d["site"]  # fully inside the host
        # analytic ellipsoid volume = 4/3 π abc; sub-voxel volume within 3 %, label count 20 %
        a, b, c = d["semi_axes_mm"]
        assert d["volume_ml"] == pytest.approx(4 / 3 * np.pi * a * b * c / 1000)
        assert d["voxelised_volume_ml"] == pytest.approx(d["volume_ml"], rel=0.03)
        assert m.sum() * vvol == pytest.approx(d["volume_ml"], rel=0.2)
        assert les.masses_g[d["name"]] == pytest.approx(d["volume_ml"] * d["density_g_cm3"],
                                                        rel=0.03)
    # no two lesions overlap, and original labels are unchanged outside the lesions
    lesion_any = les.organ_mask("lesions")
    np.testing.assert_array_equal(les.labels.array[~lesion_any], male.labels.array[~lesion_any])
    # CT appearance: liver lesions hypodense, bone lesions sclerotic
    for d in info:
        core = ndimage.binary_erosion(les.organ_mask(d["name"]))
        if not core.any():
            continue
        hu = float(les.hu.array[core].mean())
        if d["site"] == "liver":
            assert hu < TISSUES["liver"]["hu"] - 20
        if d["site"] == "bone":
            assert hu > TISSUES["spongiosa"]["hu"] + 200
    # mass bookkeeping: Δ total = Σ V_lesion (ρ_lesion - ρ_host) (host: the tissue replaced)
    fine_before = sum(male.masses_g[n] for n in male.region_names())
    fine_after = sum(les.masses_g[n] for n in les.region_names())
    vol = male.geometry.voxel_volume_ml
    delta = float(les.density.array.astype(float).sum() - male.density.array.astype(float).sum())
    assert fine_after - fine_before == pytest.approx(delta * vol, abs=1.0)


def test_lesions_deterministic_and_default_count(male):
    a = add_lesions(male, np.random.default_rng(9), sites=("liver",))
    b = add_lesions(male, np.random.default_rng(9), sites=("liver",))
    assert a.params["lesions"] == b.params["lesions"]
    assert 1 <= len(a.params["lesions"]) <= 8
    # a second call numbers on
    c = add_lesions(a, np.random.default_rng(1), n=1, sites=("liver",))
    assert c.params["lesions"][-1]["name"] == f"lesion_{len(a.params['lesions']) + 1}"


def test_female_drops_prostate_bed(female):
    a = add_lesions(female, np.random.default_rng(2), n=3, volume_ml_range=(1.0, 5.0))
    assert all(d["site"] != "prostate_bed" for d in a.params["lesions"])


def test_lesion_that_cannot_fit_is_skipped_with_warning(male):
    with pytest.warns(TheradoseWarning, match="could not place a bone lesion"):
        a = add_lesions(male, np.random.default_rng(0), n=1, sites=("bone",),
                        volume_ml_range=(900.0, 1000.0))
    assert a.params["lesions"] == []


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(("call", "field", "match"), [
    (lambda: reference_phantom("child"), "name", "unknown reference phantom"),
    (lambda: reference_phantom("adult_male", voxel_mm=0.5), "voxel_mm", r"\[1.5, 10\]"),
    (lambda: reference_phantom("adult_male", voxel_mm="3mm"), "voxel_mm", "got '3mm'"),
    (lambda: random_anatomy(42), "rng", "numpy.random.Generator"),
    (lambda: random_anatomy(np.random.default_rng(), sex="x"), "sex", "'male' or 'female'"),
    (lambda: random_anatomy(np.random.default_rng(), height_cm=300.0), "height_cm", "300"),
    (lambda: random_anatomy(np.random.default_rng(), weight_kg=10.0), "weight_kg", "10"),
])
def test_builders_reject_bad_input(call, field, match):
    with pytest.raises(InputError, match=match) as exc:
        call()
    assert exc.value.field == field
    _one_line_names(exc, field)


@pytest.mark.parametrize(("kwargs", "field", "match"), [
    ({"n": -1}, "n", "integer in"),
    ({"n": True}, "n", "integer in"),
    ({"sites": ("lung",)}, "sites", "unknown lesion site"),
    ({"sites": ()}, "sites", "unknown lesion site"),
    ({"volume_ml_range": (10.0, 1.0)}, "volume_ml_range", "min <= max"),
    ({"volume_ml_range": "big"}, "volume_ml_range", "min <= max"),
])
def test_add_lesions_rejects_bad_input(male, kwargs, field, match):
    with pytest.raises(InputError, match=match) as exc:
        add_lesions(male, np.random.default_rng(0), **kwargs)
    assert exc.value.field == field
    _one_line_names(exc, field)


def test_add_lesions_rejects_bad_objects(male, female):
    with pytest.raises(InputError, match="anatomy must be an Anatomy") as exc:
        add_lesions("patient", np.random.default_rng(0))
    _one_line_names(exc, "anatomy")
    with pytest.raises(InputError, match="rng must be") as exc:
        add_lesions(male, 1)
    _one_line_names(exc, "rng")
    with pytest.raises(InputError, match="needs a male anatomy") as exc:
        add_lesions(female, np.random.default_rng(0), sites=("prostate_bed",))
    _one_line_names(exc, "sites")


def test_organ_mask_unknown_name(male):
    with pytest.raises(InputError, match="no region or group named 'pancreatic_duct'") as exc:
        male.organ_mask("pancreatic_duct")
    _one_line_names(exc, "name")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert male.organ_mask("lungs").sum() > male.organ_mask("lung_left").sum()
