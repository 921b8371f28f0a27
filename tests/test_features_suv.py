"""SUV metrics against hand-computed values and a brute-force sphere mean."""

from __future__ import annotations

import numpy as np
import pytest

from theradose.errors import GeometryMismatchError, InputError, UnitError
from theradose.features import PEAK_RADIUS_MM, suv_metrics
from theradose.volume import Geometry, LabelMap, Volume

G = Geometry((12, 12, 12), (4.0, 4.0, 4.0))


def _pet(arr, g=G):
    return Volume(np.asarray(arr, float), g, unit="g/mL", modality="PT")


def _labels(g=G):
    lab = np.zeros(g.shape, np.uint8)
    lab[2:10, 2:10, 2:6] = 1          # liver
    lab[4:8, 4:8, 7:11] = 2           # lesion
    return LabelMap(lab, g, names={1: "liver", 2: "lesion_1"})


def test_radius_is_that_of_one_millilitre():
    assert 4 / 3 * np.pi * PEAK_RADIUS_MM ** 3 == pytest.approx(1000.0, rel=1e-4)


def test_peak_voxel_counts_on_the_grid():
    # 4 mm: offsets with i²+j²+k² <= (6.2035/4)² = 2.405: 1 + 6 + 12 voxels
    m = suv_metrics(_pet(np.ones(G.shape)), _labels())
    assert m["liver"]["peak_voxels"] == 19
    assert m["liver"]["peak_volume_ml"] == pytest.approx(19 * 0.064)
    g48 = Geometry((6, 6, 6), (4.8, 4.8, 4.8))  # (6.2035/4.8)² = 1.67: 1 + 6
    lab = LabelMap(np.ones((6, 6, 6), np.uint8), g48, names={1: "liver"})
    assert suv_metrics(_pet(np.ones((6, 6, 6)), g48), lab)["liver"]["peak_voxels"] == 7


def test_metrics_against_brute_force():
    rng = np.random.default_rng(3)
    arr = rng.gamma(4.0, 1.5, G.shape)
    arr[6, 6, 9] = 40.0  # the lesion's hottest voxel
    m = suv_metrics(_pet(arr), _labels())
    lab = _labels()
    offsets = [(k, j, i) for k in range(-1, 2) for j in range(-1, 2) for i in range(-1, 2)
               if (k * k + j * j + i * i) * 16.0 <= PEAK_RADIUS_MM ** 2]

    def sphere_mean(z, y, x):
        vals = [arr[z + k, y + j, x + i] for k, j, i in offsets
                if 0 <= z + k < 12 and 0 <= y + j < 12 and 0 <= x + i < 12]
        return sum(vals) / len(vals)

    for name in ("liver", "lesion_1"):
        mask = lab.mask(name)
        vals = arr[mask]
        peak = max(sphere_mean(*idx) for idx in np.argwhere(mask))
        e = m[name]
        assert e["suv_max"] == pytest.approx(vals.max())
        assert e["suv_mean"] == pytest.approx(vals.mean())
        assert e["suv_peak"] == pytest.approx(peak, rel=1e-12)
        assert e["volume_ml"] == pytest.approx(mask.sum() * 0.064)
        assert e["total_uptake_g"] == pytest.approx(vals.mean() * mask.sum() * 0.064)
    assert m["lesion_1"]["suv_peak_local"] == pytest.approx(sphere_mean(6, 6, 9), rel=1e-12)
    assert m["lesion_1"]["ratio_to_liver"] == pytest.approx(
        arr[lab.mask("lesion_1")].mean() / arr[lab.mask("liver")].mean())
    assert "ratio_to_liver" not in m["liver"]


def test_uniform_lesion_has_peak_equal_to_mean_inside():
    arr = np.ones(G.shape)
    arr[3:9, 3:9, 6:12] = 5.0  # a 6-voxel cube: the sphere (radius 1.55 voxels) fits inside
    lab = np.zeros(G.shape, np.uint8)
    lab[3:9, 3:9, 6:12] = 1
    m = suv_metrics(_pet(arr), LabelMap(lab, G, names={1: "lesion_1"}))["lesion_1"]
    assert (m["suv_max"], m["suv_mean"], m["suv_peak"]) == (5.0, 5.0, 5.0)
    # the hottest voxels are everywhere; the local peak is the best of them: also 5
    assert m["suv_peak_local"] == 5.0


def test_errors():
    lab = _labels()
    with pytest.raises(UnitError, match="unit: SUV metrics need an SUV image"):
        suv_metrics(Volume(np.ones(G.shape), G, unit="Bq/mL", modality="PT"), lab)
    with pytest.raises(GeometryMismatchError, match="geometry"):
        suv_metrics(_pet(np.ones((5, 5, 5)), Geometry((5, 5, 5), (4.0, 4.0, 4.0))), lab)
    bad = np.ones(G.shape)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="values: 1 non-finite"):
        suv_metrics(_pet(bad), lab)
    with pytest.raises(InputError, match=r"names: unknown VOI\(s\) \['kidney'\]"):
        suv_metrics(_pet(np.ones(G.shape)), lab, names=["kidney"])


def test_ibsi_digital_phantom_intensity_peaks():
    # IBSI reference manual (Zwanenburg et al., Radiology 2020;295:328), digital phantom,
    # consensus values: local intensity peak 2.6, global intensity peak 3.1 (3 significant
    # digits); 2 mm voxels, the sphere over the whole image, not only the ROI
    from pathlib import Path

    nib = pytest.importorskip("nibabel")
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / \
        "ibsi_digital_phantom"
    if not folder.is_dir():
        pytest.skip(f"shared data not available at {folder} (only in the project's CI)")
    img = nib.load(folder / "phantom.nii.gz")
    arr = np.transpose(np.asarray(img.dataobj, float), (2, 1, 0))  # (x, y, z) -> (z, y, x)
    roi = np.transpose(np.asarray(nib.load(folder / "mask.nii.gz").dataobj), (2, 1, 0))
    g = Geometry(arr.shape, tuple(float(z) for z in img.header.get_zooms()[:3]))
    m = suv_metrics(_pet(arr, g), LabelMap(roi.astype(np.uint8), g, names={1: "roi"}))["roi"]
    assert m["n_voxels"] == 74
    assert m["suv_mean"] == pytest.approx(2.15, abs=0.005)  # IBSI mean intensity 2.15
    assert m["suv_peak_local"] == pytest.approx(2.6, abs=0.05)
    assert m["suv_peak"] == pytest.approx(3.1, abs=0.05)
