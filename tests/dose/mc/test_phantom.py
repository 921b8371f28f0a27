"""VoxelPhantom: constructors, media mapping, validation."""

from __future__ import annotations

import numpy as np
import pytest

from theradose.dose.mc._phantom import CT_CLASS_MEDIA, VoxelPhantom
from theradose.errors import GeometryMismatchError, InputError, TheradoseWarning, UnitError
from theradose.materials import SCHNEIDER_2000
from theradose.volume import Geometry, LabelMap, Volume

GEO = Geometry((2, 2, 3), (2.0, 2.0, 2.0))


def _one_line(exc: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(exc.value)


def test_uniform_mass():
    # analytic: 12 voxels x 8 mm3 x 1.85 g/cm3 = 0.1776 g
    p = VoxelPhantom.uniform(GEO, "cortical_bone")
    assert p.media == ("cortical_bone",)
    assert float(p.mass_g.sum()) == pytest.approx(12 * 0.008 * 1.85, rel=1e-12)
    assert not p.density.flags.writeable


def test_from_ct_mapping_and_density():
    hu = np.array([-1000, -800, -100, 40, 300, 1200, 3500, 40, 40, 40, 40, 40],
                  float).reshape(GEO.shape)
    ct = Volume(hu, GEO, unit="HU")
    with pytest.warns(TheradoseWarning, match="metal"):
        p = VoxelPhantom.from_ct(ct)
    names = [p.media[i] for i in p.material.ravel()[:7]]
    # documented mapping (spongiosa -> soft_tissue, metal -> cortical_bone)
    assert names == ["air", "lung", "adipose", "soft_tissue", "soft_tissue", "cortical_bone",
                     "cortical_bone"]
    # Schneider 2000 line: density at 40 HU interpolated between (23, 1.031) and (100, 1.1199)
    assert p.density.ravel()[3] == pytest.approx(float(SCHNEIDER_2000(40.0)), rel=1e-12)
    assert p.density.ravel()[3] == pytest.approx(1.031 + 17 / 77 * (1.1199 - 1.031), rel=1e-9)
    assert set(CT_CLASS_MEDIA) >= {"air", "lung", "spongiosa", "metal"}


def test_from_density_thresholds():
    rho = np.array([0.0012, 0.3, 1.0, 1.9] * 3).reshape(GEO.shape)
    p = VoxelPhantom.from_density(Volume(rho, GEO, unit="g/cm3"))
    assert [p.media[i] for i in p.material.ravel()[:4]] == ["air", "lung", "soft_tissue",
                                                             "cortical_bone"]
    np.testing.assert_array_equal(p.density, rho)


def test_from_labels_nominal_density():
    lab = LabelMap(np.array([0, 1, 2] * 4).reshape(GEO.shape), GEO,
                   names={1: "lung", 2: "water"})
    p = VoxelPhantom.from_labels(lab)
    assert p.media == ("air", "lung", "water")
    # nominal densities of MEDIA: air 0.001205, lung 0.26, water 1.0
    np.testing.assert_allclose(p.density.ravel()[:3], [0.001205, 0.26, 1.0])


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(material=np.zeros((2, 2, 2), int)), GeometryMismatchError, "material"),
    (dict(material=np.zeros(GEO.shape, float)), InputError, "integer indices"),
    (dict(material=np.full(GEO.shape, 3)), InputError, r"material indices must lie"),
    (dict(density=-np.ones(GEO.shape)), InputError, "density: density must be finite"),
    (dict(media=("unobtainium",)), InputError, "unknown medium"),
    (dict(media=()), InputError, "media: need at least one medium"),
])
def test_validation(kwargs, exc, match):
    args = dict(geometry=GEO, material=np.zeros(GEO.shape, int), density=np.ones(GEO.shape),
                media=("water",))
    args.update(kwargs)
    with pytest.raises(exc, match=match) as e:
        VoxelPhantom(**args)
    _one_line(e)


def test_constructor_errors():
    with pytest.raises(UnitError, match="ct.unit: expected a CT in HU") as e:
        VoxelPhantom.from_ct(Volume(np.zeros(GEO.shape), GEO, unit="g/cm3"))
    _one_line(e)
    with pytest.raises(InputError, match="ct: expected a CT Volume"):
        VoxelPhantom.from_ct(np.zeros(GEO.shape))
    with pytest.raises(InputError, match="class_media: no medium for material class"):
        VoxelPhantom.from_ct(Volume(np.zeros(GEO.shape), GEO, unit="HU"),
                             class_media={"air": "air"})
    with pytest.raises(UnitError, match="density.unit"):
        VoxelPhantom.from_density(Volume(np.ones(GEO.shape), GEO, unit="HU"))
    with pytest.raises(InputError, match="material_of_density: the last density bound"):
        VoxelPhantom.from_density(Volume(np.full(GEO.shape, 3.0), GEO, unit="g/cm3"),
                                  material_of_density=((1.0, "lung"), (2.0, "water")))
    with pytest.raises(InputError, match="material_of_density: density bounds"):
        VoxelPhantom.from_density(Volume(np.ones(GEO.shape), GEO, unit="g/cm3"),
                                  material_of_density=((2.0, "lung"), (1.0, "water")))
    with pytest.raises(InputError, match="density: density must be a number"):
        VoxelPhantom.uniform(GEO, "water", -1.0)
    with pytest.raises(InputError, match="geometry: expected a Geometry"):
        VoxelPhantom((2, 2, 3), np.zeros(GEO.shape, int), np.ones(GEO.shape), ("water",))
    lab = LabelMap(np.array([0, 1, 2] * 4).reshape(GEO.shape), GEO, names={1: "lung"})
    with pytest.raises(InputError, match="materials.names: material label 2 has no name"):
        VoxelPhantom.from_labels(lab)
    lab = LabelMap(np.ones(GEO.shape, int), GEO, names={1: "liver"})
    with pytest.raises(InputError, match="materials.names: label 1 name 'liver'"):
        VoxelPhantom.from_labels(lab)
    with pytest.raises(InputError, match="materials: expected a LabelMap"):
        VoxelPhantom.from_labels(np.ones(GEO.shape))
    lab = LabelMap(np.ones(GEO.shape, int), GEO, names={1: "water"})
    with pytest.raises(InputError, match="density: expected a density Volume"):
        VoxelPhantom.from_labels(lab, "dense")
