"""The adult template: ORNL / Cristy–Eckerman (MIRD-5 revised) organ equations, in paint order.

The template is written in the phantom's own frame, in cm: origin at the centre of the base of
the trunk, x to the phantom's left, y posterior, z superior (Snyder et al. 1978; Cristy & Eckerman
1987). That frame *is* DICOM LPS up to the factor 10 mm/cm. Organs are moved and scaled into a
patient by :func:`build_steps`:

* body outline (trunk, legs): ``(s_t, s_t, s_z)`` about the origin;
* skeleton, lungs, organ positions ("frame"): ``(f_t, f_t, s_z)``, ``f_t = min(s_t, s_z)`` so a
  heavier patient carries the extra mass outside the rib cage;
* head and neck: isotropic ``s_h`` about the top of the trunk;
* each organ additionally by its own factor ``k[organ]`` about its centre, and shifted by
  ``shift_cm[organ]``.

References
----------
Snyder WS, Ford MR, Warner GG. Estimates of specific absorbed fractions for photon sources
uniformly distributed in various organs of a heterogeneous phantom. MIRD Pamphlet No. 5, Revised.
Society of Nuclear Medicine, New York, 1978.
Cristy M, Eckerman KF. Specific absorbed fractions of energy at various ages from internal photon
sources. ORNL/TM-8381/V1-V7, Oak Ridge National Laboratory, 1987. doi:10.2172/6233735.
"""

from __future__ import annotations

import numpy as np

from theradose.phantoms._anatomy_shapes import (
    Capsule,
    Diff,
    ECyl,
    Ellipsoid,
    Half,
    Inter,
    Legs,
    Mapped,
    Ribs,
    Solid,
    Union,
)

__all__ = ["FINE_REGIONS", "GROUPS", "TEMPLATE_HEIGHT_CM", "build_outline", "build_steps"]

#: Template standing height (cm): legs 80 + trunk 70 + neck 7 + head 23.
TEMPLATE_HEIGHT_CM = 180.0
#: Template z (cm) of the lower edge of the field of view (mid-thigh) and of the soles.
Z_FOV_MIN_CM = -40.0
Z_SOLE_CM = -80.0
#: Top of the trunk / base of the neck and top of the head (template cm).
Z_TRUNK_TOP = 70.0
Z_HEAD_TOP = 100.0

#: Fine regions -> tissue, in label order (label value = position + 1 among those present).
FINE_REGIONS: dict[str, str] = {
    "body": "soft_tissue",
    "lung_left": "lung",
    "lung_right": "lung",
    "trachea": "air",
    "liver": "liver",
    "spleen": "spleen",
    "stomach": "gi_tract",
    "pancreas": "pancreas",
    "small_bowel": "gi_tract",
    "colon": "gi_tract",
    "kidney_left_cortex": "kidney",
    "kidney_left_medulla": "kidney",
    "kidney_right_cortex": "kidney",
    "kidney_right_medulla": "kidney",
    "urinary_bladder_wall": "bladder_wall",
    "urinary_bladder_content": "urine",
    "prostate": "prostate",
    "testes": "testis",
    "uterus": "uterus",
    "ovaries": "ovary",
    "heart": "heart",
    "heart_blood_pool": "blood",
    "aorta": "blood",
    "inferior_vena_cava": "blood",
    "iliac_artery_left": "blood",
    "iliac_artery_right": "blood",
    "bone_cortical": "bone_cortical",
    "bone_spongiosa": "spongiosa",
    "bone_medullary": "yellow_marrow",
    "brain": "brain",
    "thyroid_gland": "thyroid",
    "parotid_gland_left": "gland",
    "parotid_gland_right": "gland",
    "submandibular_gland_left": "gland",
    "submandibular_gland_right": "gland",
    "lacrimal_gland_left": "gland",
    "lacrimal_gland_right": "gland",
}
_MALE_ONLY = {"prostate", "testes"}
_FEMALE_ONLY = {"uterus", "ovaries"}

#: Organ groups: a partition (each fine region in at most one group; no group named like a region).
GROUPS: dict[str, tuple[str, ...]] = {
    "lungs": ("lung_left", "lung_right"),
    "kidney_left": ("kidney_left_cortex", "kidney_left_medulla"),
    "kidney_right": ("kidney_right_cortex", "kidney_right_medulla"),
    "urinary_bladder": ("urinary_bladder_wall", "urinary_bladder_content"),
    "blood": ("heart_blood_pool", "aorta", "inferior_vena_cava", "iliac_artery_left",
              "iliac_artery_right"),
    "skeleton": ("bone_cortical", "bone_spongiosa", "bone_medullary"),
    "salivary_glands": ("parotid_gland_left", "parotid_gland_right", "submandibular_gland_left",
                        "submandibular_gland_right"),
    "lacrimal_glands": ("lacrimal_gland_left", "lacrimal_gland_right"),
}


def regions_for(sex: str) -> list[str]:
    """Fine regions present in a phantom of ``sex``, in label order."""
    drop = _FEMALE_ONLY if sex == "male" else _MALE_ONLY
    return [r for r in FINE_REGIONS if r not in drop]


class _Frames:
    """Template-to-patient maps for one parameter set (see module docstring)."""

    def __init__(self, p: dict) -> None:
        self.s_z, self.s_t, self.s_h = p["s_z"], p["s_t"], p["s_h"]
        self.f_t = min(self.s_t, self.s_z)
        self.k = p["k"]
        self.shift = p.get("shift_cm", {})

    def frame_pt(self, q) -> np.ndarray:
        return np.array([q[0] * self.f_t, q[1] * self.f_t, q[2] * self.s_z])

    def body_pt(self, q) -> np.ndarray:
        return np.array([q[0] * self.s_t, q[1] * self.s_t, q[2] * self.s_z])

    def head_pt(self, q) -> np.ndarray:
        a = np.array([0.0, 0.0, Z_TRUNK_TOP])
        return np.array([0.0, 0.0, Z_TRUNK_TOP * self.s_z]) + self.s_h * (np.asarray(q) - a)

    def frame(self, s: Solid) -> Solid:
        return Mapped(s, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (self.f_t, self.f_t, self.s_z))

    def body(self, s: Solid) -> Solid:
        return Mapped(s, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (self.s_t, self.s_t, self.s_z))

    def head(self, s: Solid) -> Solid:
        h = self.s_h
        return Mapped(s, (0.0, 0.0, Z_TRUNK_TOP), (0.0, 0.0, Z_TRUNK_TOP * self.s_z), (h, h, h))

    def organ(self, s: Solid, c0, key: str, *, shift_key: str | None = None,
              where: str = "frame") -> Solid:
        """Template solid ``s`` anchored at ``c0``, scaled by ``k[key]`` about it."""
        k = self.k.get(key, 1.0)
        pt = {"frame": self.frame_pt, "body": self.body_pt, "head": self.head_pt}[where]
        base = {"frame": (self.f_t, self.f_t, self.s_z), "body": (self.s_t, self.s_t, self.s_z),
                "head": (self.s_h,) * 3}[where]
        new = pt(c0) + np.asarray(self.shift.get(shift_key or key, (0.0, 0.0, 0.0)))
        return Mapped(s, tuple(float(v) for v in c0), tuple(float(v) for v in new),
                      tuple(float(b * k) for b in base))

    def capsule(self, p0, p1, r, where: str = "frame") -> Capsule:
        pt = {"frame": self.frame_pt, "head": self.head_pt}[where]
        sc = self.f_t if where == "frame" else self.s_h
        return Capsule(tuple(pt(p0)), tuple(pt(p1)), r * sc)


def build_outline(sex: str, p: dict) -> list[Solid]:
    """Solids whose union is the body outline (patient frame, cm)."""
    f = _Frames(p)
    parts: list[Solid] = [
        f.body(ECyl(0.0, 0.0, 20.0, 10.0, 0.0, Z_TRUNK_TOP)),  # trunk (arms inside, as in MIRD)
        f.body(Legs(10.0, 160.0, Z_SOLE_CM)),
        f.head(ECyl(0.0, 0.0, 5.4, 5.4, Z_TRUNK_TOP, 77.5)),  # neck (Cristy-Eckerman radius)
        f.head(ECyl(0.0, 0.0, 7.0, 10.0, 77.0, 91.0)),  # head: elliptic cylinder ...
        f.head(Ellipsoid((0.0, 0.0, 91.0), (7.0, 10.0, 9.0), zlim=(91.0, Z_HEAD_TOP))),  # + dome
    ]
    if sex == "male":
        parts.append(f.body(Ellipsoid((0.0, -7.2, -2.5), (3.0, 2.6, 3.3))))  # scrotum
    else:
        for sx in (-1.0, 1.0):  # breasts (Cristy-Eckerman adult female style)
            parts.append(f.body(Ellipsoid((9.0 * sx, -8.5, 50.0), (4.8, 4.3, 4.5))))
    return parts


def _bones(f: _Frames, t: float, kb: float) -> tuple[list, list, list]:
    """Cortical (outer) solids, spongiosa (inner, red-marrow-bearing) and medullary solids."""
    cort: list[Solid] = []
    spong: list[Solid] = []
    medul: list[Solid] = []
    # spine (thoraco-lumbar + sacrum), MIRD: (x/2)^2 + ((y-5.5)/2.5)^2 <= 1
    cort.append(f.frame(ECyl(0.0, 5.5, 2.0, 2.5, 10.0, Z_TRUNK_TOP)))
    spong.append(f.frame(ECyl(0.0, 5.5, 2.0 - t, 2.5 - t, 10.0 + t, Z_TRUNK_TOP)))
    # cervical spine (neck; our addition, the MIRD-5 phantom has no neck)
    cort.append(f.head(ECyl(0.0, 2.3, 1.4, 1.5, Z_TRUNK_TOP, 78.0)))
    spong.append(f.head(ECyl(0.0, 2.3, 1.4 - t, 1.5 - t, Z_TRUNK_TOP, 78.0 - t)))
    # ribs: 12 pairs of elliptic slabs (MIRD-5)
    cort.append(f.frame(Ribs(64.3, 2.45, 1.2, 12, (17.0, 9.8), (16.4, 9.2))))
    spong.append(f.frame(Ribs(64.3 - t, 2.45, 1.2 - 2 * t, 12, (17.0 - t, 9.8 - t),
                              (16.4 + t, 9.2 + t))))
    # pelvis (MIRD-5 iliac plates between two elliptic cylinders, y >= 2) + pubic rami (ours)
    cort.append(f.frame(Inter(Diff(ECyl(0.0, 8.0, 12.0, 12.0, 10.0, 22.5),
                                   ECyl(0.0, 9.1, 11.3, 12.3, 0.0, 30.0)),
                              Half((0.0, -1.0, 0.0), -2.0))))
    spong.append(f.frame(Inter(Diff(ECyl(0.0, 8.0, 12.0 - t, 12.0 - t, 10.0 + t, 22.5 - t),
                                    ECyl(0.0, 9.1, 11.3 + t, 12.3 + t, 0.0, 30.0)),
                               Half((0.0, -1.0, 0.0), -2.0 - t))))
    cort.append(f.capsule((-3.0, -7.8, 3.5), (3.0, -7.8, 3.5), 0.9))
    spong.append(f.capsule((-3.0, -7.8, 3.5), (3.0, -7.8, 3.5), 0.9 - t))
    for sx in (-1.0, 1.0):
        cort.append(f.capsule((3.0 * sx, -7.8, 3.5), (10.0 * sx, 0.0, 9.5), 1.0))
        spong.append(f.capsule((3.0 * sx, -7.8, 3.5), (10.0 * sx, 0.0, 9.5), 1.0 - t))
        # femur: head, neck, shaft (proximal spongiosa, distal medullary cavity)
        head_c, neck_e = (9.2 * sx, 0.3, 7.5), (12.0 * sx, 0.3, 4.5)
        shaft_e = (8.2 * sx, 0.3, -45.0)
        cort.append(f.frame(Ellipsoid(head_c, (2.4, 2.4, 2.4))))
        cort.append(f.capsule(head_c, neck_e, 1.6))
        cort.append(f.capsule(neck_e, shaft_e, 1.45))
        spong.append(f.frame(Ellipsoid(head_c, (2.4 - t,) * 3)))
        spong.append(f.capsule(head_c, neck_e, 1.6 - t))
        shaft_in = f.capsule(neck_e, shaft_e, 1.45 - t)
        zcut = -8.0 * f.s_z
        spong.append(Inter(shaft_in, Half((0.0, 0.0, -1.0), -zcut)))
        medul.append(Inter(shaft_in, Half((0.0, 0.0, 1.0), zcut)))
        # arm bones inside the trunk (MIRD-5), proximal humerus with red marrow
        cort.append(f.frame(ECyl(18.0 * sx, 0.0, 1.2, 2.0, 20.0, 68.0)))
        spong.append(f.frame(ECyl(18.0 * sx, 0.0, 1.2 - t, 2.0 - t, 52.0, 68.0 - t)))
        medul.append(f.frame(ECyl(18.0 * sx, 0.0, 1.2 - t, 2.0 - t, 20.0 + t, 52.0)))
        # clavicles (MIRD: tori; here capsules)
        c0, c1 = (1.8 * sx, -7.2, 67.0), (14.5 * sx, 0.5, 68.5)
        cort.append(f.capsule(c0, c1, 0.9))
        spong.append(f.capsule(c0, c1, 0.9 - t))
        # scapulae: posterior elliptic shells
        side = Half((-sx, 0.0, 0.0), -5.0)
        back = Half((0.0, -1.0, 0.0), -3.5)
        cort.append(f.frame(Inter(Inter(Diff(ECyl(0.0, 0.0, 19.0, 9.9, 50.0, 66.0),
                                             ECyl(0.0, 0.0, 17.8, 9.1, 0.0, 100.0)), side), back)))
        spong.append(f.frame(Inter(Inter(Diff(
            ECyl(0.0, 0.0, 19.0 - t, 9.9 - t, 50.0 + t, 66.0 - t),
            ECyl(0.0, 0.0, 17.8 + t, 9.1 + t, 0.0, 100.0)), side), Half((0.0, -1.0, 0.0),
                                                                     -3.5 - t))))
    # sternum
    cort.append(f.frame(ECyl(0.0, -8.7, 1.6, 0.55, 46.0, 63.0)))
    if t < 0.5:
        spong.append(f.frame(ECyl(0.0, -8.7, 1.6 - t, 0.55 - t, 46.0 + t, 63.0 - t)))
    # cranium: shell of 0.8 cm around the brain (MIRD-5 skull), diploe = spongiosa
    cb = (0.0, 0.5, 90.5)
    brain = np.array([6.0, 9.0, 6.5]) * kb
    cort.append(f.head(Diff(Ellipsoid(cb, tuple(brain + 0.8)), Ellipsoid(cb, tuple(brain)))))
    spong.append(f.head(Diff(Ellipsoid(cb, tuple(brain + 0.8 - t)),
                             Ellipsoid(cb, tuple(brain + t)))))
    # mandible (U-shaped band) and rami, facial bones: cortical only (ours)
    front = Half((0.0, 1.0, 0.0), 0.5)
    cort.append(f.head(Inter(Diff(ECyl(0.0, -1.5, 5.3, 7.8, 79.0, 81.5),
                                  ECyl(0.0, -1.5, 4.3, 6.8, 0.0, 200.0)), front)))
    cort.append(f.head(Inter(Diff(ECyl(0.0, 0.0, 6.6, 9.6, 81.5, 85.0),
                                  ECyl(0.0, 0.0, 5.8, 8.8, 0.0, 200.0)),
                             Half((0.0, 1.0, 0.0), -2.0))))
    for sx in (-1.0, 1.0):
        cort.append(f.capsule((4.8 * sx, 0.5, 80.5), (5.0 * sx, 1.5, 85.0), 0.6, where="head"))
    return cort, spong, medul


def build_steps(sex: str, p: dict) -> list[tuple[str, Solid]]:
    """Paint steps ``(region, solid)``: later steps overwrite earlier ones (patient frame, cm).

    ``p`` holds ``s_z``, ``s_t``, ``s_h`` (body scales), ``k`` (organ scale factors),
    ``shift_cm`` (organ shifts), ``t_cortical_cm``, ``bladder_wall_cm``, ``heart_inner``.
    """
    f = _Frames(p)
    k = p["k"]
    steps: list[tuple[str, Solid]] = []
    add = steps.append
    for name, sx in (("lung_right", -1.0), ("lung_left", 1.0)):
        c = (8.5 * sx, 0.0, 43.5)
        add((name, f.organ(Ellipsoid(c, (5.0, 7.5, 24.0), zlim=(43.5, np.inf)), c, "lungs",
                           shift_key=name)))
    # GI tract (MIRD-5 small intestine / colon layout, simplified to cylinders and capsules)
    c = (0.0, -3.5, 21.5)
    add(("small_bowel", f.organ(ECyl(0.0, -3.5, 11.0, 5.0, 16.0, 27.0), c, "small_bowel")))
    colon = Union((ECyl(-8.5, -2.4, 2.3, 2.3, 14.5, 25.5),
                   Capsule((-8.5, -3.5, 25.5), (9.0, -3.5, 25.5), 1.7),
                   ECyl(9.0, 0.5, 1.9, 2.1, 9.0, 25.5),
                   Capsule((9.0, 0.5, 9.0), (2.0, 2.0, 6.0), 1.5),
                   Capsule((2.0, 2.0, 6.0), (0.0, 1.5, 0.5), 1.4)))
    add(("colon", f.frame(colon)))
    c = (8.0, -4.0, 35.0)
    add(("stomach", f.organ(Ellipsoid(c, (4.0, 3.0, 8.0)), c, "stomach")))
    c = (-6.0, 0.0, 35.0)  # liver: MIRD-5 elliptic cylinder cut by x/35 + y/45 - z/43 <= -1
    add(("liver", f.organ(ECyl(0.0, 0.0, 16.5, 8.0, 27.0, 43.0,
                               planes=(((1 / 35, 1 / 45, -1 / 43), -1.0),)), c, "liver")))
    c = (11.0, 3.0, 37.0)
    add(("spleen", f.organ(Ellipsoid(c, (3.5, 2.0, 6.0)), c, "spleen")))
    c = (1.0, -0.8, 35.5)
    add(("pancreas", f.organ(Ellipsoid(c, (13.0, 1.2, 2.8), planes=(((-1.0, 0, 0), 3.0),)), c,
                             "pancreas")))
    for side, sx in (("left", 1.0), ("right", -1.0)):
        c = (6.0 * sx, 6.0, 32.5)  # MIRD-5 kidney, hilum cut at |x| = 3 cm
        kid = Ellipsoid(c, (4.5, 1.5, 5.5), planes=(((-sx, 0.0, 0.0), -3.0),))
        med = Ellipsoid((6.3 * sx, 6.0, 32.5), (2.8, 0.93, 3.4))  # medulla: ours
        add((f"kidney_{side}_cortex", f.organ(kid, c, "kidneys", shift_key=f"kidney_{side}")))
        add((f"kidney_{side}_medulla", f.organ(med, c, "kidneys", shift_key=f"kidney_{side}")))
    c = (0.0, -4.5, 8.0)  # MIRD-5 bladder: content semi-axes 4.706, 3.206, 3.206 cm
    w = p["bladder_wall_cm"]
    add(("urinary_bladder_wall", f.organ(Ellipsoid(c, (4.706 + w, 3.206 + w, 3.206 + w)), c,
                                         "urinary_bladder")))
    add(("urinary_bladder_content", f.organ(Ellipsoid(c, (4.706, 3.206, 3.206)), c,
                                            "urinary_bladder")))
    if sex == "male":
        c = (0.0, -2.2, 2.9)
        add(("prostate", f.organ(Ellipsoid(c, (2.0, 1.3, 1.4)), c, "prostate")))
        c = (0.0, -7.3, -2.5)
        add(("testes", f.organ(Union((Ellipsoid((1.4, -7.3, -2.5), (1.25, 1.45, 2.2)),
                                      Ellipsoid((-1.4, -7.3, -2.5), (1.25, 1.45, 2.2)))),
                               c, "testes", where="body")))
    else:
        c = (0.0, 0.5, 13.5)
        add(("uterus", f.organ(Ellipsoid(c, (2.6, 1.6, 4.5)), c, "uterus")))
        c = (0.0, 1.5, 12.0)
        add(("ovaries", f.organ(Union((Ellipsoid((5.5, 1.5, 12.0), (1.5, 0.75, 1.1)),
                                       Ellipsoid((-5.5, 1.5, 12.0), (1.5, 0.75, 1.1)))),
                                c, "ovaries")))
    # heart: rotated ellipsoid (ours; the ORNL heart is a set of half-ellipsoids), long axis from
    # base to apex pointing left, anterior and inferior
    u = np.array([0.55, -0.45, -0.70])
    u /= np.linalg.norm(u)
    v = np.cross(u, [0.0, 0.0, 1.0])
    v /= np.linalg.norm(v)
    rot = np.column_stack([u, v, np.cross(u, v)])
    c = (1.0, -2.8, 50.0)
    semi = np.array([6.8, 5.3, 5.3])
    add(("heart", f.organ(Ellipsoid(c, tuple(semi), rot=rot), c, "heart")))
    add(("heart_blood_pool", f.organ(Ellipsoid(c, tuple(semi * p["heart_inner"]), rot=rot), c,
                                     "heart")))
    # large vessels (ours)
    add(("aorta", Union((f.capsule((0.8, -2.5, 52.0), (0.6, -1.8, 60.0), 1.4),
                         f.capsule((0.6, -1.8, 60.0), (1.6, 1.8, 62.0), 1.2),
                         f.capsule((1.6, 1.8, 62.0), (1.6, 1.8, 22.0), 1.1)))))
    add(("inferior_vena_cava", Union((f.capsule((-2.2, 2.0, 18.0), (-2.2, 2.0, 44.0), 1.1),
                                      f.capsule((-2.2, 2.0, 44.0), (-1.0, -0.5, 47.0), 1.1)))))
    for side, sx in (("left", 1.0), ("right", -1.0)):
        add((f"iliac_artery_{side}", Union((
            f.capsule((1.6, 1.8, 22.0), (7.0 * sx, 0.3, 12.0), 0.65),
            f.capsule((7.0 * sx, 0.3, 12.0), (8.5 * sx, -3.5, 3.0), 0.6)))))
    add(("trachea", Union((f.capsule((0.0, -1.2, 63.0), (0.0, -1.2, 70.0), 0.85),
                           f.capsule((0.0, -1.2, 70.0), (0.0, -1.2, 79.5), 0.85, where="head")))))
    kb = k.get("brain", 1.0)
    cort, spong, medul = _bones(f, p["t_cortical_cm"], kb)
    steps += [("bone_cortical", s) for s in cort]
    steps += [("bone_spongiosa", s) for s in spong]
    steps += [("bone_medullary", s) for s in medul]
    cb = (0.0, 0.5, 90.5)
    add(("brain", f.head(Ellipsoid(cb, (6.0 * kb, 9.0 * kb, 6.5 * kb)))))
    c = (0.0, -1.9, 73.0)
    add(("thyroid_gland", f.organ(Union((Ellipsoid((1.7, -1.9, 73.0), (0.9, 1.0, 2.4)),
                                         Ellipsoid((-1.7, -1.9, 73.0), (0.9, 1.0, 2.4)))),
                                  c, "thyroid_gland", where="head")))
    for side, sx in (("left", 1.0), ("right", -1.0)):
        for name, c, semi, key in (
            ("parotid_gland", (5.4 * sx, 2.0, 83.0), (1.1, 2.0, 2.4), "parotid_glands"),
            ("submandibular_gland", (3.6 * sx, -2.8, 78.8), (1.15, 1.7, 1.25),
             "submandibular_glands"),
            ("lacrimal_gland", (3.4 * sx, -7.6, 87.5), (0.9, 0.5, 0.35), "lacrimal_glands"),
        ):
            add((f"{name}_{side}", f.organ(Ellipsoid(c, semi), c, key, where="head",
                                           shift_key=f"{name}_{side}")))
    return steps
