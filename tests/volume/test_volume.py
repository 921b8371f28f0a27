from datetime import datetime

import numpy as np
import pytest

from theradose.errors import InputError, UnitError
from theradose.volume import Geometry, LabelMap, Volume


def test_unit_conversion_and_total():
    g = Geometry((2, 2, 2), (10.0, 10.0, 10.0))  # 1 mL voxels
    v = Volume(np.full(g.shape, 2.0), g, unit="kBq/mL", modality="NM")
    assert v.to_unit("Bq/mL").array[0, 0, 0] == 2000.0
    # 8 voxels of 1 mL at 2 kBq/mL = 16 kBq = 0.016 MBq (hand calculation)
    assert v.total("MBq") == pytest.approx(0.016)
    a = Volume(np.full(g.shape, 1.5), g, unit="MBq")
    assert a.total() == pytest.approx(12.0)
    with pytest.raises(UnitError, match="cannot convert"):
        a.to_unit("Gy")
    with pytest.raises(InputError, match="^unit: total"):
        Volume(np.zeros(g.shape), g, unit="Gy").total()


def test_validation_errors():
    g = Geometry((2, 2, 2), (1, 1, 1))
    with pytest.raises(InputError, match="^array: array shape"):
        Volume(np.zeros((2, 2, 3)), g)
    with pytest.raises(UnitError, match=r"^unit: unknown unit 'furlongs'"):
        Volume(np.zeros(g.shape), g, unit="furlongs")
    with pytest.raises(InputError, match="^sigma: "):
        Volume(np.zeros(g.shape), g, sigma=np.zeros((1, 2, 2)))
    with pytest.raises(InputError, match="^acquisition_time: "):
        Volume(np.zeros(g.shape), g, acquisition_time="2024-01-01")


def test_replace_keeps_history_and_time():
    g = Geometry((1, 1, 1), (1, 1, 1))
    t = datetime(2024, 5, 1, 10, 30)
    v = Volume(np.ones(g.shape), g, unit="Bq/mL", acquisition_time=t)
    w = v.replace(array=v.array * 2, note="doubled")
    assert w.history == ("doubled",) and w.acquisition_time == t and v.array[0, 0, 0] == 1


def test_labelmap_masks_and_errors():
    g = Geometry((2, 2, 2), (1, 1, 1))
    m1 = np.zeros(g.shape, bool)
    m1[0] = True
    m2 = np.zeros(g.shape, bool)
    m2[1, 0, 0] = True
    lm = LabelMap.from_masks({"liver": m1, "kidney_left": m2}, g)
    assert lm.names == {1: "liver", 2: "kidney_left"}
    assert lm.mask("liver").sum() == 4 and lm.mask("kidney_left").sum() == 1
    known = r"no VOI named 'spleen'; known: \['kidney_left', 'liver'\]"
    with pytest.raises(InputError, match=known):
        lm.mask("spleen")
    with pytest.raises(InputError, match="overlaps"):
        LabelMap.from_masks({"a": m1, "b": m1}, g)
    with pytest.raises(InputError, match="^names: label 0"):
        LabelMap(np.zeros(g.shape, np.uint8), g, names={0: "bg"})
    with pytest.raises(InputError, match="^array: label map must hold integers"):
        LabelMap(np.zeros(g.shape), g)
