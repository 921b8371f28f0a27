"""Tissue registry: cited defaults (kidney α/β 2.6 Gy, T_rep 2.8 h: Wessels et al. 2008 MIRD
Pamphlet 20, doi:10.2967/jnumed.108.053173; tumour α/β 10 Gy, T_rep 1.5 h: conventional,
Strigari 2010), aliases and validation."""

from __future__ import annotations

import json
import math

import pytest

from theradose.errors import InputError
from theradose.radiobiology import TISSUES, TissueParameters, get_tissue


def test_kidney_and_tumour_defaults():
    k = get_tissue("kidney")
    assert (k.alpha_beta_gy, k.repair_half_time_h) == (2.6, 2.8)
    assert k.repair_rate_per_h == pytest.approx(math.log(2) / 2.8)
    assert not k.conventional and any("Wessels" in r for r in k.references)
    t = get_tissue("tumour")
    assert (t.alpha_beta_gy, t.repair_half_time_h, t.conventional) == (10.0, 1.5, True)
    assert get_tissue("liver").alpha_beta_gy == 2.5  # Strigari 2010
    for name in TISSUES:
        tp = TISSUES[name]
        assert tp.references and tp.note  # every default says where it comes from
        json.dumps(tp.to_dict())


def test_aliases():
    assert get_tissue("kidney_left") is TISSUES["kidney"]
    assert get_tissue("Parotid Gland Right") is TISSUES["salivary_glands"]
    assert get_tissue("lesion_12") is TISSUES["tumour"]
    assert get_tissue("tumor") is TISSUES["tumour"]
    assert get_tissue("bone-marrow") is TISSUES["red_marrow"]
    custom = TissueParameters("x", 3.0, 1.0)
    assert get_tissue(custom) is custom


def test_validation_branches():
    for fn, field, match in [
        (lambda: get_tissue("brain"), "tissue", "unknown tissue"),
        (lambda: get_tissue(3), "tissue", "tissue name"),
        (lambda: TissueParameters("x", 0.0, 1.0), "alpha_beta_gy", "positive"),
        (lambda: TissueParameters("x", 2.0, math.nan), "repair_half_time_h", "positive"),
        (lambda: TissueParameters("x", 2.0, 1.0, -0.1), "alpha_per_gy", "positive"),
    ]:
        with pytest.raises(InputError, match=match) as ei:
            fn()
        assert "\n" not in str(ei.value) and field in str(ei.value)
