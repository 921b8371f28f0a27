import numpy as np
import pytest

from theradose.errors import InputError, UnitError
from theradose.materials import (
    DEFAULT_MATERIAL_CLASSES,
    HUCalibration,
    hu_to_density,
    hu_to_material,
)
from theradose.volume import Geometry, LabelMap, Volume


def test_schneider_nodes_and_interpolation():
    # Schneider, Bortfeld & Schlegel, Phys Med Biol 45 (2000) 459: calibration nodes
    assert hu_to_density(-1000.0) == pytest.approx(0.00121)
    assert hu_to_density(1600.0) == pytest.approx(1.9642)
    # linear between (14, 1.03) and (23, 1.031): midpoint 18.5 HU -> 1.0305 (hand)
    assert hu_to_density(18.5) == pytest.approx(1.0305)
    # clamped outside the table
    assert hu_to_density(-3000.0) == pytest.approx(0.00121)
    assert hu_to_density(5000.0) == pytest.approx(2.8)


def test_material_classes_at_edges():
    hu = np.array([-1000, -951, -950, -121, -120, -21, -20, 119, 120, 499, 500, 2999, 3000])
    names = [DEFAULT_MATERIAL_CLASSES.names[i - 1] for i in hu_to_material(hu)]
    assert names == ["air", "air", "lung", "lung", "adipose", "adipose", "soft_tissue",
                     "soft_tissue", "spongiosa", "spongiosa", "cortical_bone", "cortical_bone",
                     "metal"]


def test_volume_interfaces_and_errors():
    g = Geometry((1, 1, 2), (1, 1, 1))
    ct = Volume(np.array([[[-1000.0, 40.0]]]), g, unit="HU", modality="CT")
    rho = hu_to_density(ct)
    assert rho.unit == "g/cm3" and rho.history[-1] == "HU -> density (Schneider 2000)"
    mat = hu_to_material(ct)
    assert isinstance(mat, LabelMap) and mat.mask("soft_tissue").sum() == 1
    with pytest.raises(UnitError, match="^unit: expected a CT in HU"):
        hu_to_density(Volume(np.zeros(g.shape), g, unit="Bq/mL"))
    with pytest.raises(InputError, match="^hu: calibration HU nodes must increase"):
        HUCalibration((0.0, 0.0), (1.0, 1.0))


def test_real_ct_tissue_classes(ts_example):
    # Real CT (TotalSegmentator example, Apache-2.0). References: air 0.00121 g/cm³ (Schneider
    # 2000 node); ICRU Report 46 soft tissues 1.00-1.07 g/cm³; adult spine cortical bone
    # 1.92 g/cm³ (ICRP 110) -- the CT must show air around the body, a soft-tissue majority
    # inside it and some cortical bone.
    import SimpleITK as sitk

    ct = Volume.from_sitk(sitk.ReadImage(str(ts_example / "example_ct.nii.gz")), unit="HU")
    rho = hu_to_density(ct).array
    mat = hu_to_material(ct)
    corner = rho[:, :5, :5]
    assert np.median(corner) == pytest.approx(0.00121, abs=0.005)
    body = mat.array >= mat.labels["adipose"]
    soft = mat.mask("soft_tissue")
    assert soft.sum() > 0.4 * body.sum()
    assert 1.00 <= np.median(rho[soft]) <= 1.07
    assert mat.mask("cortical_bone").sum() > 100
    assert np.median(rho[mat.mask("cortical_bone")]) > 1.3
