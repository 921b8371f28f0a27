import numpy as np
import pytest

from theradose.errors import UnitError
from theradose.units import conserved_quantity, convert, parse_unit


def test_conversions_by_hand():
    assert convert(1.0, "GBq", "MBq") == 1000.0
    assert convert(3600.0, "MBq*s", "MBq*h") == pytest.approx(1.0)
    np.testing.assert_allclose(convert(np.array([250.0]), "mGy", "Gy"), [0.25])


def test_dicom_codes_and_conservation():
    assert parse_unit("BQML").name == "Bq/mL"  # DICOM (0054,1001) code
    assert parse_unit("CNTS").name == "counts"
    assert parse_unit("GML").name == "g/mL"
    assert conserved_quantity("counts") == "total"
    assert conserved_quantity("Bq/mL") == "mean"
    assert conserved_quantity("label") == "label"


def test_errors():
    with pytest.raises(UnitError, match=r"^Units: unknown unit 'PROPCNTS'") as e:
        parse_unit("PROPCNTS", field="Units")
    assert "\n" not in str(e.value)
    with pytest.raises(UnitError, match="cannot convert Bq/mL"):
        convert(1.0, "Bq/mL", "MBq")
