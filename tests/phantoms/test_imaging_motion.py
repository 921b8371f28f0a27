"""Patient repositioning: rigid hand calculations, conservation, labels, truth files."""

import json
import math
import time

import numpy as np
import pytest
import SimpleITK as sitk

from theradose.errors import InputError, OutputExistsError
from theradose.phantoms._imaging_motion import (
    PatientMotion,
    apply_to_volume,
    random_transform,
    write_transform,
)
from theradose.volume import Geometry, LabelMap, Volume

G = Geometry((40, 50, 60), (2.0, 2.0, 3.0), (-59.0, -49.0, -58.5))  # centre (0, 0, 0)


def _blob(centre_mm, sigma_mm=4.0):
    """HU image with a Gaussian marker (peak 1000 HU over 0) at ``centre_mm``."""
    x = G.voxel_centres()
    r2 = ((x - np.asarray(centre_mm)) ** 2).sum(-1)
    return Volume(1000.0 * np.exp(-0.5 * r2 / sigma_mm ** 2), G, unit="HU", modality="CT")


def _centroid(img):
    w = np.clip(img.array, 0, None)
    return (G.voxel_centres() * w[..., None]).sum((0, 1, 2)) / w.sum()


def test_rigid_marker_displacement_hand_calculation():
    # hand calculation: rotation θ about z through c, shift t: T(x) = Rz(θ)(x - c) + c + t.
    # A marker at p in the reference appears at x = Rz(-θ)(p - c - t) + c.
    theta, c, t, p = 3.0, np.array([5.0, -4.0, 2.0]), np.array([4.0, -6.0, 3.0]), \
        np.array([20.0, 10.0, -10.0])
    m = PatientMotion((0.0, 0.0, theta), t, c)
    th = math.radians(theta)
    q = p - c - t
    expected = np.array([math.cos(th) * q[0] + math.sin(th) * q[1],
                         -math.sin(th) * q[0] + math.cos(th) * q[1], q[2]]) + c
    np.testing.assert_allclose(m.transform_points(expected), p, atol=1e-12)
    moved = apply_to_volume(_blob(p), m)
    # tolerance 0.1 mm: linear interpolation of a 4 mm Gaussian sampled at 2-3 mm
    np.testing.assert_allclose(_centroid(moved), expected, atol=0.1)
    assert m.is_rigid


def test_sitk_transform_matches_analytic_points():
    # independent: SimpleITK's composite transform vs our analytic T(x) (field sampled at 8 mm)
    m = random_transform(np.random.default_rng(3), centre_mm=(0, 0, 0))
    pts = np.random.default_rng(0).uniform(-50, 50, (20, 3))
    t = m.to_sitk(G)
    got = np.array([t.TransformPoint(tuple(map(float, q))) for q in pts])
    np.testing.assert_allclose(got, m.transform_points(pts), atol=0.1)
    np.testing.assert_allclose(np.asarray(m.rigid_sitk().GetMatrix()).reshape(3, 3),
                               m.rotation_matrix(), atol=1e-12)


def test_activity_total_conserved():
    # conservation law (documented renormalisation): the total is the input total to 1e-9
    a = np.zeros(G.shape)
    a[10:30, 10:40, 15:45] = np.random.default_rng(2).uniform(0, 5, (20, 30, 30))
    act = Volume(a, G, unit="MBq")
    for seed in range(3):
        m = random_transform(np.random.default_rng(seed), centre_mm=(0, 0, 0))
        out = apply_to_volume(act, m)
        assert out.array.sum() == pytest.approx(a.sum(), rel=1e-9)
        assert not np.allclose(out.array, a)
        assert "renormalised" in out.history[-1]
    # divergence-free field (no breathing): Jacobian 1 + O(|∇u|²), so the renormalisation
    # factor is 1 up to interpolation and second-order terms (< 1%)
    m = random_transform(np.random.default_rng(4), centre_mm=(0, 0, 0), breathing_mm=0.0)
    out = apply_to_volume(act, m)
    factor = float(out.history[-1].rsplit("factor ", 1)[1].rstrip(")"))
    assert abs(factor - 1) < 0.01


def test_labels_stay_integers_and_named():
    lab = np.zeros(G.shape, dtype=np.uint8)
    lab[10:30, 10:25, 10:30] = 1
    lab[10:30, 25:40, 30:50] = 4
    lm = LabelMap(lab, G, names={1: "liver", 4: "kidney_left"})
    out = apply_to_volume(lm, random_transform(np.random.default_rng(1), centre_mm=(0, 0, 0)))
    assert isinstance(out, LabelMap) and out.array.dtype == np.uint8
    assert set(np.unique(out.array)) == {0, 1, 4}
    assert out.names == {1: "liver", 4: "kidney_left"}
    # volumes change only by boundary resampling (< 10% for ~ 10-20 voxel wide boxes)
    assert (out.array == 1).sum() == pytest.approx((lab == 1).sum(), rel=0.10)


def test_hu_fill_is_air_and_density_fill():
    m = PatientMotion((0, 0, 0), (0.0, 0.0, 30.0), (0, 0, 0))  # shift 30 mm in z
    hu = apply_to_volume(Volume(np.zeros(G.shape, np.float32), G, unit="HU"), m)
    # T(x) = x + 30 mm: the top 10 slices (3 mm) sample outside the grid -> air
    assert np.all(hu.array[-9:] == -1024) and np.all(hu.array[:-11] == 0)
    rho = apply_to_volume(Volume(np.ones(G.shape), G, unit="g/cm3"), m)
    assert rho.array[-1].max() == pytest.approx(0.0012)


def test_breathing_profile():
    # analytic: u_z(z_d) = b, u_z(z_d ± 2w) = b e^{-2}; no x/y component
    m = random_transform(np.random.default_rng(8), centre_mm=(0, 0, 0), max_rotation_deg=0,
                         max_shift_mm=0, deformation_mm=0, breathing_mm=5.0,
                         diaphragm_z_mm=40.0, breathing_width_mm=60.0)
    b = m.breathing_mm
    assert 0 < abs(b) <= 5.0
    u = m.displacement_mm([[10.0, 3.0, 40.0], [0.0, 0.0, 160.0]])
    np.testing.assert_allclose(u, [[0, 0, b], [0, 0, b * math.exp(-2)]], atol=1e-12)


def test_random_field_variance():
    # analytic: with random phases each component at a fixed point has variance σ² =
    # deformation_mm² / 3 over draws; 600 draws, tolerance ≈ 5 standard errors (√(2/600) ≈ 6%)
    u = np.array([random_transform(np.random.default_rng(s), centre_mm=(0, 0, 0),
                                   deformation_mm=6.0, breathing_mm=0.0)
                  .displacement_mm([25.0, -10.0, 40.0]) for s in range(600)])
    var = (u ** 2).mean(axis=0)
    np.testing.assert_allclose(var, 12.0, rtol=0.25)
    assert (u ** 2).sum(1).mean() == pytest.approx(36.0, rel=0.15)


def test_random_transform_bounds_and_determinism():
    kw = dict(centre_mm=(1.0, 2.0, 3.0), max_rotation_deg=2.0, max_shift_mm=7.0)
    a = random_transform(np.random.default_rng(5), **kw)
    b = random_transform(np.random.default_rng(5), **kw)
    c = random_transform(np.random.default_rng(6), **kw)
    assert a.to_dict() == b.to_dict() and a.to_dict() != c.to_dict()
    assert np.all(np.abs(a.rotation_deg) <= 2.0) and np.all(np.abs(a.translation_mm) <= 7.0)
    assert a.diaphragm_z_mm == 3.0
    rigid = random_transform(np.random.default_rng(5), deformation_mm=0, breathing_mm=0, **kw)
    assert rigid.is_rigid
    img = _blob((0, 0, 0))
    np.testing.assert_array_equal(apply_to_volume(img, a).array, apply_to_volume(img, b).array)


def test_to_dict_round_trip_json():
    m = random_transform(np.random.default_rng(2), centre_mm=(0, 0, 0))
    d = json.loads(json.dumps(m.to_dict()))
    back = PatientMotion.from_dict(d)
    pts = np.random.default_rng(1).uniform(-80, 80, (10, 3))
    np.testing.assert_array_equal(back.transform_points(pts), m.transform_points(pts))
    assert "output/fixed" in d["convention"]


def test_write_transform(tmp_path):
    m = random_transform(np.random.default_rng(2), centre_mm=(0, 0, 0))
    pj = write_transform(m, tmp_path / "t.json")
    assert PatientMotion.from_dict(json.loads(pj.read_text())).to_dict() == m.to_dict()
    ph = write_transform(m, tmp_path / "t.h5", reference=G)
    t = sitk.ReadTransform(str(ph))
    q = (12.0, -7.0, 20.0)
    np.testing.assert_allclose(t.TransformPoint(q), m.transform_points(q), atol=0.05)
    rigid = PatientMotion((1.0, 0.0, 0.0), (1.0, 2.0, 3.0), (0, 0, 0))
    pt = write_transform(rigid, tmp_path / "r.tfm")
    np.testing.assert_allclose(sitk.ReadTransform(str(pt)).TransformPoint(q),
                               rigid.transform_points(q), atol=1e-9)
    with pytest.raises(OutputExistsError, match="output exists"):
        write_transform(m, tmp_path / "t.json")
    write_transform(m, tmp_path / "t.json", overwrite=True)
    with pytest.raises(InputError, match=r"t.txt: path: unknown transform file type '.txt'"):
        write_transform(m, tmp_path / "t.txt")
    with pytest.raises(InputError, match=r"d.tfm: path: ITK .tfm text files cannot hold the "
                                         r"deformation"):
        write_transform(m, tmp_path / "d.tfm")
    with pytest.raises(InputError, match=r"^reference: a deformable motion needs the reference"):
        write_transform(m, tmp_path / "d.h5")
    assert not (tmp_path / "d.h5").exists()


def test_warp_performance():
    # issue 3: motion warp of a CT of 150 × 100 × 300 voxels in < 3 s
    g = Geometry((300, 100, 150), (3.0, 3.0, 3.0), (-225.0, -150.0, -450.0))
    ct = Volume(np.random.default_rng(0).normal(0, 100, g.shape).astype(np.float32), g,
                unit="HU")
    m = random_transform(np.random.default_rng(1), centre_mm=(0, 0, 0))
    t0 = time.perf_counter()
    apply_to_volume(ct, m)
    assert time.perf_counter() - t0 < 3.0


@pytest.mark.parametrize(("kw", "pattern"), [
    ({"rng": 1}, r"^rng: must be a numpy.random.Generator"),
    ({"centre_mm": (0, 0)}, r"^centre_mm: must be 3 finite numbers \(x, y, z\)"),
    ({"max_rotation_deg": -1}, r"^max_rotation_deg: must be a finite number >= 0"),
    ({"max_shift_mm": "x"}, r"^max_shift_mm: must be a number >= 0, got 'x'"),
    ({"deformation_mm": float("nan")}, r"^deformation_mm: must be a finite number >= 0"),
    ({"correlation_mm": 0}, r"^correlation_mm: must be > 0, got 0"),
    ({"breathing_mm": -2}, r"^breathing_mm: must be a finite number >= 0"),
    ({"n_modes": 0}, r"^n_modes: must be an integer >= 1, got 0"),
    ({"breathing_width_mm": 0}, r"^breathing_width_mm: must be > 0, got 0"),
])
def test_random_transform_validation(kw, pattern):
    args = {"rng": np.random.default_rng(0), "centre_mm": (0, 0, 0), **kw}
    with pytest.raises(InputError, match=pattern) as info:
        random_transform(**args)
    assert "\n" not in str(info.value)


def test_motion_validation():
    m = PatientMotion((0, 0, 0), (0, 0, 0), (0, 0, 0))
    with pytest.raises(InputError, match=r"^motion: must be a PatientMotion, got dict"):
        apply_to_volume(_blob((0, 0, 0)), {})
    with pytest.raises(InputError, match=r"^volume: must be a Volume, got ndarray"):
        apply_to_volume(np.zeros((2, 2, 2)), m)
    with pytest.raises(InputError, match=r"^reference: must be a Geometry or Volume, got str"):
        apply_to_volume(_blob((0, 0, 0)), m, reference="grid")
    with pytest.raises(InputError, match=r"^phases_rad: phases_rad \(1,\) and directions "
                                         r"\(2, 3\) must match wavevectors_per_mm \(2, 3\)"):
        PatientMotion((0, 0, 0), (0, 0, 0), (0, 0, 0), wavevectors_per_mm=np.zeros((2, 3)),
                      phases_rad=np.zeros(1), directions=np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"^breathing_mm: must be finite, got inf"):
        PatientMotion((0, 0, 0), (0, 0, 0), (0, 0, 0), breathing_mm=float("inf"))
    with pytest.raises(InputError, match=r"^rotation_deg: missing keys \['rotation_deg', "
                                         r"'translation_mm',"):
        PatientMotion.from_dict({})
    away = PatientMotion((0, 0, 0), (0, 0, 500.0), (0, 0, 0))  # everything leaves the field
    a = np.zeros(G.shape)
    a[20, 25, 30] = 1.0
    with pytest.raises(InputError, match=r"^motion: the motion moves all of the image content "
                                         r"out of the field of view"):
        apply_to_volume(Volume(a, G, unit="MBq"), away)


def test_random_field_is_divergence_free():
    # analytic: d_k ⊥ ω_k gives ∇·u = -a√(2/K) Σ_k (d_k·ω_k) sin(ω_k·x + φ_k) = 0 (breathing off);
    # central differences with h = 1e-3 mm (truncation error ~ h² |u'''| ≪ 1e-6)
    m = random_transform(np.random.default_rng(6), centre_mm=(0, 0, 0), breathing_mm=0.0)
    np.testing.assert_allclose((m.directions * m.wavevectors_per_mm).sum(1), 0, atol=1e-15)
    pts = np.random.default_rng(2).uniform(-100, 100, (50, 3))
    h = 1e-3
    div = sum((m.displacement_mm(pts + h * e)[:, i] - m.displacement_mm(pts - h * e)[:, i])
              / (2 * h) for i, e in enumerate(np.eye(3)))
    grad_scale = np.abs(m.displacement_mm(pts + h * np.eye(3)[0]) -
                        m.displacement_mm(pts)).max() / h
    assert grad_scale > 1e-3  # the field does vary
    np.testing.assert_allclose(div, 0, atol=1e-6)
