"""The pipeline's choice of the SPECT resolution: estimated, given, or the fallback (warned)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import ndimage

from theradose.pipeline import _stages
from theradose.segmentation import effective_fwhm
from theradose.volume import Geometry, LabelMap

F = 2.3548200450309493


def _reg(image: np.ndarray, spacing: float = 4.0) -> dict:
    g = Geometry(image.shape, (spacing,) * 3)
    return {"geometry": g, "reference": 0, "times_h": [4.0],
            "emission_spacing_mm": [(spacing,) * 3], "emission_bq_ml": image[None]}


def _labels(shape, spacing: float = 4.0) -> LabelMap:
    z, y, x = np.indices(shape) * spacing
    c = np.array(shape) * spacing / 2
    lab = np.zeros(shape, np.int16)
    for i, (dz, r) in enumerate([(-40.0, 14.0), (0.0, 10.0), (40.0, 12.0)], start=1):
        lab[np.sqrt((z - c[0] - dz) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= r] = i
    return LabelMap(lab, Geometry(shape, (spacing,) * 3),
                    names={1: "voi_a", 2: "voi_b", 3: "voi_c"})


KIN = {"fwhm_mm": None, "gtm_fwhm_rel_sd": None, "fwhm_fallback_mm": 12.0}


def test_estimated_when_the_study_shows_it():
    shape = (40, 30, 30)
    labels = _labels(shape)
    body = np.ones(shape, bool)
    truth = np.where(labels.array > 0, 10.0, 1.0)
    img = ndimage.gaussian_filter(truth, 12.0 / F / 4.0, mode="constant")
    out = _stages._resolution(_reg(img), labels, dict(KIN), body)
    assert out["resolution"]["source"] == "estimated"
    assert out["fwhm_mm"] == pytest.approx(12.0, rel=0.03)  # the blur applied
    assert 0 < out["gtm_fwhm_rel_sd"] < 0.1


def test_fallback_is_warned_and_flagged(caplog):
    shape = (40, 30, 30)
    labels = _labels(shape)
    flat = np.ones(shape)  # no contrast: nothing to measure
    with caplog.at_level(logging.WARNING, logger="theradose"):
        out = _stages._resolution(_reg(flat), labels, dict(KIN), np.ones(shape, bool))
    rec = out["resolution"]
    assert rec["source"] == "fallback" and rec["camera_fwhm_mm"] == 12.0
    assert out["fwhm_mm"] == pytest.approx(effective_fwhm(12.0, 4.0, 4.0))
    assert out["gtm_fwhm_rel_sd"] == 0.25
    assert any("could not be estimated" in r.getMessage() for r in caplog.records)


def test_given_fwhm_is_used_as_is():
    shape = (40, 30, 30)
    out = _stages._resolution(_reg(np.ones(shape)), _labels(shape),
                              {**KIN, "fwhm_mm": 10.5}, np.ones(shape, bool))
    assert out["fwhm_mm"] == 10.5 and out["resolution"]["source"] == "config"
    assert out["gtm_fwhm_rel_sd"] == 0.1
