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
    # physical ranges (pipeline/_config.py): threshold a concentration > 0, injected activity
    # 1 kBq to 100 GBq, SPECT sensitivity 1e-3 to 1e6 cps/MBq
    ({"segmentation": {"threshold": -1}}, "segmentation.threshold", "> 0, got -1"),
    ({"segmentation": {"threshold": 0}}, "segmentation.threshold", "> 0, got 0"),
    ({"study": {"injected_activity_mbq": 1e308}}, "study.injected_activity_mbq",
     r"in \[0\.001, 100000\], got 1e\+308"),
    ({"study": {"injected_activity_mbq": 1e-4}}, "study.injected_activity_mbq", r"\[0\.001, "),
    ({"study": {"calibration_cps_per_mbq": 1e-300}}, "study.calibration_cps_per_mbq",
     r"in \[0\.001, 1e\+06\], got 1e-300"),
    ({"study": {"calibration_cps_per_mbq": 1.1e6}}, "study.calibration_cps_per_mbq",
     r"\[0\.001, 1e\+06\]"),
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


def test_range_bounds_accepted():
    # the bounds themselves are valid values (closed intervals)
    for cal, act in ((1e-3, 1e-3), (1e6, 1e5), (12.5, 7400)):
        cfg = PipelineConfig.from_dict({"study": {"calibration_cps_per_mbq": cal,
                                                  "injected_activity_mbq": act}})
        assert cfg.section("study")["calibration_cps_per_mbq"] == cal
        assert cfg.section("study")["injected_activity_mbq"] == act


@pytest.mark.parametrize("value, ok", [(1e-3, True), (1e6, True), (9.9e-4, False),
                                       (float("nan"), False), (True, False), ("10", False)])
def test_check_calibration_names_the_flag(value, ok):
    from theradose.pipeline._config import check_calibration

    if ok:
        assert check_calibration(value, field="--calibration-cps-per-mbq") == value
    else:
        with pytest.raises(InputError) as exc:
            check_calibration(value, field="--calibration-cps-per-mbq")
        assert _one_line(exc).startswith("--calibration-cps-per-mbq: expected a sensitivity")


@pytest.mark.parametrize("value, ok", [(336.0, True), (1e-3, True), (336.1, False),
                                       (0.0, False), (-1.0, False), (float("inf"), False)])
def test_check_ct_tolerance(value, ok):
    from theradose.pipeline._config import check_ct_tolerance

    if ok:
        assert check_ct_tolerance(value) == value
    else:
        with pytest.raises(InputError, match=r"^ct_tolerance_h: .*\(0, 336\]"):
            check_ct_tolerance(value)
