"""PipelineConfig: defaults, TOML reading, one-line errors naming the key."""

from __future__ import annotations

import pytest

from theradose.errors import InputError, UnreadableFileError
from theradose.pipeline import DEFAULTS, PipelineConfig


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_defaults_are_the_documented_table():
    cfg = PipelineConfig()
    assert cfg.to_dict() == DEFAULTS
    assert cfg.section("dose")["engines"] == ["kernel", "organ_svalues"]
    assert cfg.section("kinetics")["margin_mm"] == 0.0


def test_toml_overrides(tmp_path):
    p = tmp_path / "cfg.toml"
    p.write_text('[dose]\nengines = ["kernel", "montecarlo"]\n[kinetics]\npvc = "none"\n'
                 'margin_mm = 11\n'
                 '[segmentation]\nlesions = "percent_max"\npercent = 42\n')
    cfg = PipelineConfig.from_toml(p)
    assert cfg.section("dose")["engines"] == ["kernel", "montecarlo"]
    assert cfg.section("kinetics")["margin_mm"] == 11.0
    assert cfg.section("segmentation")["percent"] == 42.0
    assert cfg.section("outputs")["rtdose"] is True  # untouched default


@pytest.mark.parametrize(("data", "field", "match"), [
    ({"dosee": {}}, "dosee", "unknown section 'dosee'"),
    ({"dose": {"engine": ["kernel"]}}, "dose.engine", "unknown key 'engine'"),
    ({"dose": {"engines": ["mc"]}}, "dose.engines", "accepted: a non-empty list"),
    ({"dose": {"engines": []}}, "dose.engines", "non-empty"),
    ({"dose": {"phantom": "child"}}, "dose.phantom", "accepted: auto"),
    ({"dose": {"kernel": 3}}, "dose.kernel", "table of options"),
    ({"kinetics": {"margin_mm": -1}}, "kinetics.margin_mm", ">= 0"),
    ({"kinetics": {"criterion": "aic"}}, "kinetics.criterion", "aicc, bic"),
    ({"kinetics": {"models": []}}, "kinetics.models", "at least one"),
    ({"kinetics": {"models": "mono"}}, "kinetics.models", "list of strings"),
    ({"kinetics": {"max_abs_corr": 2}}, "kinetics.max_abs_corr", r"\(0, 1\]"),
    ({"kinetics": {"relative_sigma": 0}}, "kinetics.relative_sigma", "> 0"),
    ({"segmentation": {"lesions": "ai"}}, "segmentation.lesions", "percent_max"),
    ({"segmentation": {"lesions": "suv_threshold"}}, "segmentation.threshold", "needed"),
    ({"segmentation": {"percent": 120}}, "segmentation.percent", r"\(0, 100\)"),
    ({"registration": {"enabled": "yes"}}, "registration.enabled", "true or false"),
    ({"registration": {"reference": 1.5}}, "registration.reference", "integer"),
    ({"study": {"calibration_cps_per_mbq": "x"}}, "study.calibration_cps_per_mbq", "number"),
    ({"study": {"nuclide": 177}}, "study.nuclide", "string"),
    ({"outputs": "all"}, "outputs", "expected a table"),
    ({"kinetics": {"pvc": "rc"}}, "kinetics.pvc", "expected one of"),
    ({"kinetics": {"margin_mm": 5}}, "kinetics.margin_mm", "use one of them"),
    ({"kinetics": {"pvc": "gtm", "fwhm_mm": 11, "margin_mm": 5}}, "kinetics.margin_mm",
     "use one of them"),
    ({"kinetics": {"fwhm_mm": float("nan")}}, "kinetics.fwhm_mm", "finite"),
    ({"kinetics": {"fwhm_fallback_mm": float("inf")}}, "kinetics.fwhm_fallback_mm", "finite"),
    ({"kinetics": {"fwhm_fallback_mm": 0}}, "kinetics.fwhm_fallback_mm", "> 0"),
    ({"kinetics": {"fwhm_mm": 0}}, "kinetics.fwhm_mm", "> 0"),
    ({"kinetics": {"gtm_fwhm_rel_sd": 1.5}}, "kinetics.gtm_fwhm_rel_sd", r"\[0, 1\)"),
    ({"kinetics": {"gtm_fwhm_rel_sd": -0.1}}, "kinetics.gtm_fwhm_rel_sd", ">= 0"),
    ({"kinetics": {"local_align": "lesion*"}}, "kinetics.local_align", "list of strings"),
    ({"kinetics": {"local_align_max_mm": 0}}, "kinetics.local_align_max_mm", "> 0"),
])
def test_invalid_values_name_the_key(data, field, match, tmp_path):
    p = tmp_path / "bad.toml"
    with pytest.raises(InputError, match=match) as exc:
        PipelineConfig.from_dict(data, source=str(p))
    msg = _one_line(exc)
    assert msg.startswith(f"{p}: {field}: ")


def test_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(UnreadableFileError, match="cannot read") as exc:
        PipelineConfig.from_toml(tmp_path / "missing.toml")
    assert "missing.toml: config:" in _one_line(exc)
    bad = tmp_path / "bad.toml"
    bad.write_text("[dose\nengines = 1\n")
    with pytest.raises(UnreadableFileError, match="not valid TOML") as exc:
        PipelineConfig.from_toml(bad)
    assert "bad.toml: config:" in _one_line(exc)
