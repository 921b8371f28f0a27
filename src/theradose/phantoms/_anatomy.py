"""Voxelised adult anatomy of the virtual patients (ORNL / Cristy–Eckerman stylized phantom).

See ``docs/phantoms-anatomy.md`` for the phantom, its departures from the ORNL report, the axis
mapping, the tissue table, the reference masses and the variation model.
"""

from __future__ import annotations

import math

import numpy as np

from theradose.errors import InputError
from theradose.phantoms._anatomy_adipose import (
    FAT_ENVELOPE,
    VISCERAL_MM,
    BodyComposition,
    adipose_fraction,
    subcutaneous_mm,
)
from theradose.phantoms._anatomy_lesions import LESION_SITES, add_lesions
from theradose.phantoms._anatomy_model import Anatomy, add_sums
from theradose.phantoms._anatomy_reference import REFERENCE_PARAMS
from theradose.phantoms._anatomy_template import (
    FINE_REGIONS,
    GROUPS,
    TEMPLATE_HEIGHT_CM,
    Z_FOV_MIN_CM,
    Z_SOLE_CM,
    build_outline,
    build_steps,
    regions_for,
)
from theradose.phantoms._anatomy_tissues import (
    ICRP89_MASSES_G,
    RED_MARROW_FRACTION_OF_SPONGIOSA,
    TISSUES,
)
from theradose.phantoms._anatomy_voxelize import voxelize
from theradose.volume import Geometry, LabelMap, Volume

__all__ = [
    "LESION_SITES",
    "REFERENCE_BODY",
    "Anatomy",
    "add_lesions",
    "random_anatomy",
    "reference_phantom",
]

#: ICRP-89 reference adults: height (cm) and mass (kg).
REFERENCE_BODY: dict[str, dict[str, float]] = {
    "male": {"height_cm": 176.0, "weight_kg": 73.0},
    "female": {"height_cm": 163.0, "weight_kg": 60.0},
}

_SEXES = ("male", "female")
_TEMPLATE = ("ORNL adult phantom (Cristy & Eckerman, ORNL/TM-8381, 1987; revised MIRD-5, "
             "Snyder et al. 1978), adapted by theradose: see docs/phantoms-anatomy.md")


# ---------------------------------------------------------------------------------- building
def _grid(sex: str, p: dict, voxel_mm: float):
    outline = build_outline(sex, p)
    lo = np.min([s.bbox[0] for s in outline], axis=0)
    hi = np.max([s.bbox[1] for s in outline], axis=0)
    h = voxel_mm / 10.0
    xh = max(abs(lo[0]), abs(hi[0])) + 1.0
    yh = max(abs(lo[1]), abs(hi[1])) + 1.0
    nx = math.ceil(2 * xh / h) + 1
    ny = math.ceil(2 * yh / h) + 1
    z0 = Z_FOV_MIN_CM * p["s_z"]
    z1 = hi[2] + 0.5
    nz = math.ceil((z1 - z0) / h) + 1
    x = (np.arange(nx) - (nx - 1) / 2.0) * h
    y = (np.arange(ny) - (ny - 1) / 2.0) * h
    z = z0 + np.arange(nz) * h
    return outline, (x, y, z)


def _legs_below_fov_ml(p: dict) -> float:
    """Analytic volume (mL) of the MIRD legs below the field of view (both legs)."""
    zz = np.linspace(Z_SOLE_CM, Z_FOV_MIN_CM, 401)
    r = 10.0 * (1.0 + zz / 160.0)
    return float(2 * np.pi * p["s_t"] ** 2 * p["s_z"] * np.trapezoid(r * r, zz))


def _split_body(res, value: dict[str, int], voxel_mm: float,
                composition: BodyComposition) -> dict[str, float]:
    """Replace the body's soft tissue by adipose tissue and muscle (in place on ``res``).

    Only the body share of each voxel (``res.body_fraction``) changes, by the same mixture in
    HU and density, so voxels stay linear mixtures of pure tissues. Returns the masses (g)
    and volume (mL) of the body tissue by component.
    """
    names = {v: n for n, v in value.items()}
    fat = adipose_fraction(res.labels, names, voxel_mm, composition)
    share = res.body_fraction
    soft, adi, mus = (TISSUES[t] for t in ("soft_tissue", "adipose", "muscle"))
    for arr, key in ((res.hu, "hu"), (res.density, "density_g_cm3")):
        arr += share * (fat * adi[key] + (1.0 - fat) * mus[key] - soft[key])
    vvol = (voxel_mm / 10.0) ** 3
    v_fat = float(np.sum(share * fat, dtype=np.float64)) * vvol
    v_all = float(np.sum(share, dtype=np.float64)) * vvol
    m_fat = v_fat * adi["density_g_cm3"]
    m_mus = (v_all - v_fat) * mus["density_g_cm3"]
    res.mass_by_value[value["body"]] = m_fat + m_mus
    return {"adipose_g": m_fat, "muscle_g": m_mus, "body_tissue_ml": v_all}


def build_anatomy(sex: str, p: dict, *, voxel_mm: float = 3.0, supersample: int = 3,
                  extra: dict | None = None) -> Anatomy:
    """Voxelise the template for parameters ``p`` (see ``_anatomy_template.build_steps``)."""
    regions = regions_for(sex)
    value = {r: i + 1 for i, r in enumerate(regions)}
    tissue = ["air"] + [FINE_REGIONS[r] for r in regions]
    hu_tab = np.array([TISSUES[t]["hu"] for t in tissue])
    rho_tab = np.array([TISSUES[t]["density_g_cm3"] for t in tissue])
    outline, axes = _grid(sex, p, voxel_mm)
    steps = [(value[n], s) for n, s in build_steps(sex, p)]
    h = voxel_mm / 10.0
    res = voxelize(outline, steps, axes, (h, h, h), hu_tab, rho_tab, body_value=value["body"],
                   supersample=supersample)
    composition = BodyComposition(subcutaneous_mm(sex, p["s_t"], min(p["s_t"], p["s_z"])),
                                  VISCERAL_MM, FAT_ENVELOPE)
    body_tissue = _split_body(res, value, voxel_mm, composition)
    x, y, z = axes
    geom = Geometry(res.labels.shape, (voxel_mm,) * 3, (x[0] * 10, y[0] * 10, z[0] * 10))
    labels = LabelMap(res.labels, geom, modality="OT", names={v: n for n, v in value.items()})
    hu = Volume(res.hu, geom, unit="HU", modality="CT")
    dens = Volume(res.density, geom, unit="g/cm3", modality="OT")
    masses = {r: float(res.mass_by_value[v]) for r, v in value.items()}
    groups = {g: tuple(m for m in members if m in value) for g, members in GROUPS.items()}
    masses = add_sums(masses, groups)
    # whole body: the field of view plus the legs below it at the density of the lowest 5 cm
    in_fov = float(res.mass_by_value[1:].sum())
    n5 = max(1, round(5.0 / h))
    low = res.density[:n5][res.labels[:n5] > 0]
    legs_g = _legs_below_fov_ml(p) * (float(low.mean()) if low.size else 1.03)
    params = {
        "sex": sex,
        "template": _TEMPLATE,
        "frame": "LPS mm = 10 x phantom cm (x patient-left, y posterior, z superior); "
                 "template origin (centre of the base of the trunk) at LPS (0, 0, 0)",
        "voxel_mm": float(voxel_mm),
        "supersample": int(supersample),
        "body_scale": {"s_z": p["s_z"], "s_t": p["s_t"], "s_h": p["s_h"],
                       "f_t": min(p["s_t"], p["s_z"])},
        "organ_scale": {k: float(v) for k, v in sorted(p["k"].items())},
        "organ_shift_mm": {k: [float(10 * c) for c in v]
                           for k, v in sorted(p.get("shift_cm", {}).items())},
        "cortical_thickness_mm": 10 * p["t_cortical_cm"],
        "bladder_wall_mm": 10 * p["bladder_wall_cm"],
        "heart_inner_ratio": p["heart_inner"],
        "red_marrow_fraction_of_spongiosa": RED_MARROW_FRACTION_OF_SPONGIOSA,
        "body_composition": {**composition.to_dict(), **body_tissue},
        "fov_mm": {"x": [x[0] * 10, x[-1] * 10], "y": [y[0] * 10, y[-1] * 10],
                   "z": [z[0] * 10, z[-1] * 10], "extent": "head to mid-thigh"},
        "mass_in_fov_g": in_fov,
        "total_body_mass_g": in_fov + legs_g,
        "lesions": [],
    }
    params.update(extra or {})
    return Anatomy(labels, groups, hu, dens, masses, params)


# ---------------------------------------------------------------------------------- public API
def _check_sex(sex) -> str:
    if sex not in _SEXES:
        raise InputError(f"sex must be 'male' or 'female', got {sex!r}", field="sex")
    return sex


def _check_voxel(voxel_mm) -> float:
    try:
        v = float(voxel_mm)
    except (TypeError, ValueError):
        v = float("nan")
    if not (1.5 <= v <= 10.0):
        raise InputError(f"voxel_mm must be a number in [1.5, 10] mm, got {voxel_mm!r}",
                         field="voxel_mm")
    return v


def _reference_params(sex: str) -> dict:
    ref = REFERENCE_PARAMS[sex]
    s_z = REFERENCE_BODY[sex]["height_cm"] / TEMPLATE_HEIGHT_CM
    return {"s_z": s_z, "s_t": ref["s_t"], "s_h": math.sqrt(s_z), "k": dict(ref["k"]),
            "shift_cm": {}, "t_cortical_cm": ref["t_cortical_cm"],
            "bladder_wall_cm": ref["bladder_wall_cm"], "heart_inner": ref["heart_inner"]}


def reference_phantom(name: str = "adult_male", *, voxel_mm: float = 3.0) -> Anatomy:
    """The ICRP-89 reference adult (``"adult_male"`` or ``"adult_female"``) on a CT grid.

    Organ axes of the ORNL phantom are scaled (factors in ``params["organ_scale"]``) so that
    liver, kidneys, spleen, lungs, heart (wall), heart blood, urinary bladder wall, salivary and
    lacrimal glands, brain, thyroid, pancreas, red marrow and whole-body mass match ICRP
    Publication 89 (within 3 % at 3 mm voxels); positions and shapes are those of the template.

    Parameters
    ----------
    name : {"adult_male", "adult_female"}
    voxel_mm : float
        Isotropic voxel size (mm), 1.5-10. Field of view: head to mid-thigh.

    Returns
    -------
    Anatomy

    References
    ----------
    ICRP Publication 89, Ann. ICRP 32(3-4), 2002. doi:10.1016/S0146-6453(03)00002-2.
    Cristy M, Eckerman KF. ORNL/TM-8381, 1987. doi:10.2172/6233735.

    Examples
    --------
    >>> a = reference_phantom("adult_male", voxel_mm=6.0)
    >>> sorted(a.groups["kidney_left"])
    ['kidney_left_cortex', 'kidney_left_medulla']

    """
    names = {"adult_male": "male", "adult_female": "female"}
    if name not in names:
        raise InputError(f"unknown reference phantom {name!r}; accepted: {sorted(names)}",
                         field="name")
    sex = names[name]
    v = _check_voxel(voxel_mm)
    body = REFERENCE_BODY[sex]
    return build_anatomy(sex, _reference_params(sex), voxel_mm=v, extra={
        "name": name, "height_cm": body["height_cm"], "weight_kg": body["weight_kg"],
        "random": False, "icrp89_reference_g": {k: (m if sex == "male" else f)
                                                for k, (m, f) in ICRP89_MASSES_G.items()}})


#: Adult height (cm) mean and SD by sex: NHANES 2015-2018 (Fryar CD et al., Anthropometric
#: reference data for children and adults: United States, 2015-2018. Vital Health Stat 3(46),
#: 2021). BMI: log-normal, median 26.5 (men) / 26.0 (women) kg/m2, σ_log 0.16: between the
#: NHANES means (~29) and the ICRP-89 reference (23.6 / 22.6), a theradose choice for a
#: therapy population.
POPULATION = {
    "male": {"height_mean_cm": 175.4, "height_sd_cm": 7.6, "bmi_median": 26.5},
    "female": {"height_mean_cm": 161.7, "height_sd_cm": 7.1, "bmi_median": 26.0},
}
_BMI_SIGMA_LOG = 0.16
#: Log-normal SD of organ volumes around the BSA-scaled reference, ~12 % (autopsy organ-mass
#: variability: de la Grandmaison GL et al., Forensic Sci Int 2001;119:149-154,
#: doi:10.1016/S0379-0738(00)00401-1, after removing the body-size dependence).
ORGAN_CV = 0.12
#: Organ position shifts (cm, SD per axis): a theradose choice (a few mm between patients).
_SHIFT_SD_CM = {"liver": 0.4, "spleen": 0.4, "kidney_left": 0.4, "kidney_right": 0.4,
                "stomach": 0.4, "pancreas": 0.3, "small_bowel": 0.3, "urinary_bladder": 0.3,
                "heart": 0.3, "prostate": 0.15, "uterus": 0.2}
_FRAME_SIZED = {"lungs"}  # sized with the rib cage
_HEAD_SIZED = {"brain", "parotid_glands", "submandibular_glands", "lacrimal_glands",
               "thyroid_gland"}


def _bsa_m2(height_cm: float, weight_kg: float) -> float:
    """Mosteller body-surface area (m²): sqrt(H·W/3600). doi:10.1056/NEJM198710223171717."""
    return math.sqrt(height_cm * weight_kg / 3600.0)


def random_anatomy(rng: np.random.Generator, *, sex: str | None = None,
                   height_cm: float | None = None, weight_kg: float | None = None,
                   voxel_mm: float = 3.0) -> Anatomy:
    """A random adult around the ICRP-89 reference phantom of its sex.

    Height scales z, weight/height the transverse size of the body; organ volumes scale with
    body-surface area and vary log-normally (CV ``ORGAN_CV``); soft organs shift by a few mm.
    The same generator state gives the same patient.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (consumed in a fixed order, whatever is given).
    sex : {"male", "female"}, optional
        Drawn 50/50 when None.
    height_cm, weight_kg : float, optional
        Drawn from :data:`POPULATION` when None (height 140-210 cm, weight 35-200 kg accepted).
    voxel_mm : float
        Isotropic voxel size (mm).

    Returns
    -------
    Anatomy

    """
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}",
                         field="rng")
    if sex is not None:
        _check_sex(sex)
    v = _check_voxel(voxel_mm)
    for fname, val, lo, hi in (("height_cm", height_cm, 140.0, 210.0),
                               ("weight_kg", weight_kg, 35.0, 200.0)):
        if val is not None and not (isinstance(val, int | float) and lo <= val <= hi):
            raise InputError(f"{fname} must be a number in [{lo:g}, {hi:g}], got {val!r}",
                             field=fname)
    # fixed draw order: sex, height, BMI, organ factors, shifts
    u_sex, z_h, z_bmi = rng.random(), rng.standard_normal(), rng.standard_normal()
    sex = sex or ("male" if u_sex < 0.5 else "female")
    pop = POPULATION[sex]
    h = float(height_cm) if height_cm is not None else float(np.clip(
        pop["height_mean_cm"] + pop["height_sd_cm"] * z_h, 145.0, 205.0))
    if weight_kg is not None:
        w = float(weight_kg)
    else:
        bmi = float(np.clip(pop["bmi_median"] * math.exp(_BMI_SIGMA_LOG * z_bmi), 17.0, 45.0))
        w = bmi * (h / 100.0) ** 2
    ref = _reference_params(sex)
    body = REFERENCE_BODY[sex]
    s_z = h / TEMPLATE_HEIGHT_CM
    s_t = ref["s_t"] * math.sqrt((w / body["weight_kg"]) / (s_z / ref["s_z"]))
    f_rel = min(s_t, s_z) / min(ref["s_t"], ref["s_z"])
    frame_vol_rel = f_rel ** 2 * (s_z / ref["s_z"])
    bsa_rel = _bsa_m2(h, w) / _bsa_m2(body["height_cm"], body["weight_kg"])
    keys = sorted(ref["k"])
    factors = np.exp(ORGAN_CV * rng.standard_normal(len(keys)) - 0.5 * ORGAN_CV ** 2)
    k = {}
    for key, fac in zip(keys, factors, strict=True):
        if key in _FRAME_SIZED or key in _HEAD_SIZED:
            k[key] = ref["k"][key] * fac ** (1 / 3)
        else:
            k[key] = ref["k"][key] * (bsa_rel * fac / frame_vol_rel) ** (1 / 3)
    shift_keys = sorted(_SHIFT_SD_CM)
    draws = rng.standard_normal((len(shift_keys), 3))
    shift = {s: tuple(float(c) for c in _SHIFT_SD_CM[s] * d)
             for s, d in zip(shift_keys, draws, strict=True)}
    # head size follows height weakly: (height ratio)^(1/3) around the reference head
    s_h = ref["s_h"] * (s_z / ref["s_z"]) ** (1 / 3)
    p = dict(ref, s_z=s_z, s_t=s_t, s_h=s_h, k=k, shift_cm=shift)
    return build_anatomy(sex, p, voxel_mm=v, extra={
        "name": "random", "height_cm": h, "weight_kg": w, "random": True,
        "bsa_m2": _bsa_m2(h, w), "organ_volume_factor": dict(zip(keys, map(float, factors),
                                                                 strict=True))})


# Only used to derive REFERENCE_PARAMS (benchmarks/phantom_anatomy.py --calibrate).
def calibrate_reference(sex: str, *, voxel_mm: float = 3.0, iterations: int = 6) -> dict:
    """Fit the organ scale factors of the reference phantom to ICRP-89 masses (fixed point)."""
    idx = 0 if sex == "male" else 1
    target = {k: v[idx] for k, v in ICRP89_MASSES_G.items() if v[idx] > 0}
    key_of = {"liver": "liver", "kidneys": "kidneys", "spleen": "spleen", "lungs": "lungs",
              "urinary_bladder_content": "urinary_bladder", "parotid_glands": "parotid_glands",
              "submandibular_glands": "submandibular_glands",
              "lacrimal_glands": "lacrimal_glands", "brain": "brain",
              "thyroid_gland": "thyroid_gland", "pancreas": "pancreas", "stomach": "stomach",
              "small_bowel": "small_bowel", "prostate": "prostate", "testes": "testes",
              "ovaries": "ovaries", "uterus": "uterus"}
    p = _reference_params(sex)
    for _ in range(iterations):
        a = build_anatomy(sex, p, voxel_mm=voxel_mm)
        m = a.masses_g
        for region, key in key_of.items():
            if region in target and m.get(region, 0) > 0:
                p["k"][key] *= (target[region] / m[region]) ** (1 / 3)
        # heart: k from wall + blood, inner ratio from the blood fraction
        tot_t = target["heart"] + target["heart_blood_pool"]
        tot_m = m["heart"] + m["heart_blood_pool"]
        p["k"]["heart"] *= (tot_t / tot_m) ** (1 / 3)
        p["heart_inner"] *= (target["heart_blood_pool"] / tot_t
                             / (m["heart_blood_pool"] / tot_m)) ** (1 / 3)
        p["bladder_wall_cm"] *= target["urinary_bladder_wall"] / m["urinary_bladder_wall"]
        # spongiosa: thinner cortex -> more spongiosa (volume roughly linear in t)
        p["t_cortical_cm"] -= 0.6 * (target["red_marrow"] - m["red_marrow"]) / m["red_marrow"] \
            * p["t_cortical_cm"]
        p["s_t"] *= math.sqrt(target["whole_body"] / a.params["total_body_mass_g"])
    return {"s_t": p["s_t"], "k": p["k"], "t_cortical_cm": p["t_cortical_cm"],
            "bladder_wall_cm": p["bladder_wall_cm"], "heart_inner": p["heart_inner"]}
