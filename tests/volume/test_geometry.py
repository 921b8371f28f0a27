import numpy as np
import pytest

from theradose.errors import GeometryMismatchError, InputError
from theradose.volume import Geometry, Volume


def _rotation(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def test_index_to_physical_matches_itk():
    # independent reference: ITK's TransformContinuousIndexToPhysicalPoint
    direction = _rotation(30) @ np.diag([1, -1, -1])
    g = Geometry((5, 6, 7), (0.8, 1.2, 2.5), (-10.0, 20.0, 5.0), direction)
    img = Volume(np.zeros(g.shape), g).to_sitk()
    for ijk in [(0, 0, 0), (6, 5, 4), (1.5, 2.25, 3.75)]:
        expected = img.TransformContinuousIndexToPhysicalPoint(ijk)
        np.testing.assert_allclose(g.index_to_physical(ijk), expected, atol=1e-9)
        np.testing.assert_allclose(g.physical_to_index(expected), ijk, atol=1e-9)


def test_voxel_volume_and_affine():
    g = Geometry((2, 3, 4), (4.8, 4.8, 4.8))
    assert g.voxel_volume_ml == pytest.approx(4.8**3 / 1000)  # mm³ -> mL
    a = g.affine()
    np.testing.assert_allclose(a @ [1, 2, 3, 1], [4.8, 9.6, 14.4, 1])


def test_same_grid_check_names_field():
    g = Geometry((2, 3, 4), (1, 1, 1))
    h = Geometry((2, 3, 4), (1, 1, 2))
    with pytest.raises(GeometryMismatchError, match=r"spacing_mm: .*different grids") as e:
        g.require_same(h, what="SPECT and CT", file="ct.nii.gz")
    assert "ct.nii.gz" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"shape": (0, 2, 2), "spacing_mm": (1, 1, 1)}, "shape"),
        ({"shape": (2, 2, 2), "spacing_mm": (1, 0, 1)}, "spacing_mm"),
        ({"shape": (2, 2, 2), "spacing_mm": (1, 1, 1), "origin_mm": (0, np.nan, 0)}, "origin_mm"),
        ({"shape": (2, 2, 2), "spacing_mm": (1, 1, 1), "direction": np.ones((3, 3))}, "direction"),
    ],
)
def test_invalid_geometry(kwargs, field):
    with pytest.raises(InputError, match=rf"^{field}: "):
        Geometry(**kwargs)


def test_dict_round_trip():
    g = Geometry((5, 6, 7), (0.8, 1.2, 2.5), (-10.0, 20.0, 5.0), _rotation(12))
    assert Geometry.from_dict(g.to_dict()).same_as(g, tol_mm=0)


def test_sitk_round_trip_is_lossless():
    rng = np.random.default_rng(1)
    g = Geometry((4, 5, 6), (0.7, 1.1, 3.0), (1.5, -2.5, 100.0), _rotation(-25))
    for dtype in (np.float32, np.float64, np.int16, np.uint8):
        arr = (rng.random(g.shape) * 100).astype(dtype)
        v = Volume(arr, g, unit="HU", modality="CT")
        back = Volume.from_sitk(v.to_sitk(), unit="HU", modality="CT")
        assert back.array.dtype == dtype
        np.testing.assert_array_equal(back.array, arr)
        assert back.geometry.same_as(g, tol_mm=1e-12)
