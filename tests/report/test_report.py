"""Tests of theradose.report: HTML/PDF content, rasterised PDF pages, validation, safety.

References: the numbers the report must show are hand-formatted from the fixture
(tests/report/conftest.py); the hottest-VOI slice and the LPS reorientation are known by
construction (analytic).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from datetime import datetime

import numpy as np
import pytest
from _report_fixtures import LESION_C, SHAPE, make_images, make_results

from theradose.errors import (
    GeometryMismatchError,
    InputError,
    OutputExistsError,
    UnitError,
    UnreadableFileError,
)
from theradose.report import ReportImages, load_results, write_report
from theradose.report._content import fmt, fmt_value_sd
from theradose.report._images import hottest_voi, orient
from theradose.volume import Geometry, LabelMap, Volume

GENERATED = datetime(2030, 1, 2, 3, 4, 5)


def _one_line_names(exc: pytest.ExceptionInfo, field: str, file: str | None = None) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert exc.value.field == field and field in msg
    if file is not None:
        assert exc.value.file == file and file in msg


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Write the report once for the content tests (rendering costs ~2 s)."""
    out = tmp_path_factory.mktemp("report")
    res = make_results()
    before = copy.deepcopy(res)
    imgs = make_images()
    dose_before = imgs.dose.array.copy()
    html, pdf = write_report(res, out, images=imgs, generated=GENERATED)
    return {"html": html, "pdf": pdf, "results": res, "before": before, "images": imgs,
            "dose_before": dose_before}


# --------------------------------------------------------------------------- formatting
def test_fmt_hand_values():
    # hand-worked: 3 significant digits, no exponent in the usual range
    assert fmt(4.2123) == "4.21"
    assert fmt(0.3177) == "0.318"
    assert fmt(17.64) == "17.6"
    assert fmt(812.4) == "812"
    assert fmt(0.0) == "0"
    assert fmt(2.5e-5) == "2.5e-05"
    assert fmt(None) == "n/a"
    assert fmt_value_sd((4.2123, 0.3177)) == "4.21 ± 0.318"
    assert fmt_value_sd((4.2123, None)) == "4.21"
    assert fmt_value_sd((None, None)) == "n/a"


# --------------------------------------------------------------------------- images
def test_hottest_voi_and_slice_by_construction():
    # lesion_1 holds 8 Gy (12 Gy at its centre) vs 2 Gy in parotid_right: the slice goes through
    # the lesion's maximum, which is its centre voxel (conftest.make_images).
    name, idx = hottest_voi(orient(make_images()))
    assert name == "lesion_1"
    assert idx == LESION_C


def test_orientation_flipped_x_axis_is_undone():
    # A grid whose x-index axis points to patient right (direction column (-1, 0, 0)) must be
    # shown reversed along x, so that the LPS view is the same as the identity-direction one.
    flip = np.diag([-1.0, 1.0, 1.0])
    o_flip = orient(make_images(direction=flip))
    o_id = orient(make_images())
    np.testing.assert_array_equal(o_flip.dose_gy, o_id.dose_gy[:, :, ::-1])
    assert o_flip.spacing_mm == (5.0, 5.0, 5.0)


def test_report_images_validation():
    imgs = make_images()
    other = Geometry(SHAPE, (4.0, 5.0, 5.0))
    with pytest.raises(GeometryMismatchError, match="images.ct and images.dose") as e:
        ReportImages(imgs.ct, Volume(imgs.dose.array, other, unit="Gy"), imgs.spect, imgs.labels)
    _one_line_names(e, "spacing_mm")
    with pytest.raises(UnitError, match="dose image has unit 'Bq/mL'") as e:
        ReportImages(imgs.ct, imgs.spect, imgs.spect, imgs.labels)
    _one_line_names(e, "images.dose")
    with pytest.raises(InputError, match="expected a theradose LabelMap") as e:
        ReportImages(imgs.ct, imgs.dose, imgs.spect, imgs.ct)
    _one_line_names(e, "images.labels")
    with pytest.raises(InputError, match="expected a theradose Volume") as e:
        ReportImages(imgs.ct.array, imgs.dose, imgs.spect, imgs.labels)
    _one_line_names(e, "images.ct")
    with pytest.raises(InputError, match="expected ReportImages") as e:
        write_report(make_results(), "unused", images=imgs.ct)
    _one_line_names(e, "images")


def test_mgy_dose_is_shown_in_gy():
    # 2000 mGy = 2 Gy (unit conversion at the boundary)
    imgs = make_images()
    mgy = ReportImages(imgs.ct, imgs.dose.to_unit("mGy"), imgs.spect, imgs.labels)
    np.testing.assert_allclose(orient(mgy).dose_gy, orient(imgs).dose_gy)


# --------------------------------------------------------------------------- HTML
def test_html_content(report):
    html = report["html"].read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # hand-formatted values of the fixture
    for s in ("parotid_right", "lesion_1", "Tb-161", "161Tb-test-ligand", "1234.5",
              "4.21 ± 0.318", "4.31 ± 0.0452", "17.6 ± 1.93", "18.0 ± 0.2", "4.87 ± 0.41",
              "812 ± 40.1", "3.30 / 4.20 / 5.10", "2030-01-02T03:04:05",
              "ICRP-107 via icrp107-database 1.0", "Reviewed by (physician)"):
        assert s in html, s
    assert "Lu-177" not in html and "kidney" not in html  # nothing hard-coded
    # truth comparison: (4.2123 - 4.0) / 4.0 = +5.3 %; (17.64 - 18) / 18 = -2.0 %
    truth = html.split("Comparison with ground truth")[1].split("<h2>")[0]
    assert "+5.3" in truth and "-2.0" in truth
    # dose table: one header row + one row per VOI; one column per engine
    table = html.split("<h2>Absorbed dose per VOI</h2>")[1].split("<h2>")[0]
    assert table.count("<tr>") == 1 + 2
    assert "dose kernel (Gy)" in table and "dose montecarlo (Gy)" in table
    # figures: slices, one TAC figure (2 VOIs), DVH = 3 embedded PNGs that decode
    from matplotlib.image import imread

    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(pngs) == 3
    for b64 in pngs:
        raw = base64.b64decode(b64)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = imread(io.BytesIO(raw))
        assert img.shape[0] > 200 and img.shape[1] > 400
        assert float(np.std(img[..., :3])) > 0.05  # not a blank image


def test_inputs_not_modified(report):
    assert report["results"] == report["before"]
    np.testing.assert_array_equal(report["images"].dose.array, report["dose_before"])


# --------------------------------------------------------------------------- PDF
def test_pdf_pages_rasterised_and_text(report):
    pdfium = pytest.importorskip("pypdfium2")
    doc = pdfium.PdfDocument(str(report["pdf"]))
    try:
        # docs/report.md layout: text page, slices, 1 TAC page (<= 9 VOIs), DVH, closing page
        assert len(doc) == 5
        texts, inked, coloured = [], [], []
        for i in range(len(doc)):
            page = doc[i]
            texts.append(" ".join(page.get_textpage().get_text_range().split()))
            arr = page.render(scale=0.6).to_numpy()[..., :3].astype(int)
            inked.append(float(np.mean(arr.min(axis=2) < 200)))
            coloured.append(float(np.mean(arr.max(axis=2) - arr.min(axis=2) > 60)))
            page.close()
    finally:
        doc.close()
    assert min(inked) > 0.005  # every page carries visible content
    assert inked[1] > 0.2  # image page: CT slices fill much of it
    assert coloured[1] > 0.02 and coloured[2] > 0.002 and coloured[3] > 0.001  # overlays, curves
    assert "Absorbed dose per VOI" in texts[0]
    for s in ("parotid_right", "lesion_1", "4.21 ± 0.318", "17.6 ± 1.93", "4.87 ± 0.41",
              "Tb-161", "1234.5"):
        assert s in texts[0], s
    assert "Images: CT, SPECT and dose" in texts[1] and "through lesion_1" in texts[1]
    assert "Gy" in texts[1]  # isodose labels and colour bar
    assert "parotid_right (mono)" in texts[2] and "lesion_1 (bi)" in texts[2]
    assert "Dose-volume histograms" in texts[3]
    assert "Reviewed by (physician)" in texts[4] and "Date" in texts[4]
    assert "ICRP-107 via icrp107-database 1.0" in texts[4]


def test_many_vois_paginate(tmp_path):
    # 11 VOIs with TACs: 9 per TAC page -> 2 TAC pages (ceil(11 / 9)); 11 table rows
    pdfium = pytest.importorskip("pypdfium2")
    res = make_results()
    base = res["vois"]["lesion_1"]
    res["vois"] = {f"lesion_{i}": copy.deepcopy(base) for i in range(1, 12)}
    res.pop("truth")
    html, pdf = write_report(res, tmp_path, images=make_images(), generated=GENERATED)
    table = html.read_text().split("<h2>Absorbed dose per VOI</h2>")[1].split("<h2>")[0]
    assert table.count("<tr>") == 12
    doc = pdfium.PdfDocument(str(pdf))
    try:
        texts = [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()
    assert sum("Time-activity curves" in t for t in texts) == 2
    assert "lesion_11" in texts[0]


def test_minimal_results_render(tmp_path):
    # only the required keys: optional parts are shown as n/a, no TAC/DVH pages
    res = {"nuclide": "Ac-225", "injected_activity_mbq": 8.0,
           "vois": {"tumour": {"dose_gy": {"led": 55.0}}}}
    html, pdf = write_report(res, tmp_path, images=make_images(), generated=GENERATED)
    text = html.read_text()
    assert "Ac-225" in text and "55.0" in text and "n/a" in text
    assert text.count("data:image/png") == 1  # slices only
    pdfium = pytest.importorskip("pypdfium2")
    doc = pdfium.PdfDocument(str(pdf))
    try:
        assert len(doc) == 3  # text page, slices, closing page
    finally:
        doc.close()


# --------------------------------------------------------------------------- output safety
def test_refuses_overwrite_then_overwrites(report, tmp_path):
    html0 = report["html"].read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_report(make_results(), report["html"].parent, images=make_images())
    assert report["html"].read_bytes() == html0  # untouched
    # only the PDF present: refused before anything is written
    (tmp_path / "report.pdf").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="report.pdf"):
        write_report(make_results(), tmp_path, images=make_images())
    assert not (tmp_path / "report.html").exists()
    h, p = write_report(make_results(), tmp_path, images=make_images(), overwrite=True)
    assert p.read_bytes()[:5] == b"%PDF-" and h.exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.html", "report.pdf"]


# --------------------------------------------------------------------------- validation
def _mutated(path: str, value):
    r = make_results()
    *head, last = path.split(".")
    d = r
    for k in head:
        d = d[k]
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value
    return r


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "field", "match"), [
    ("vois", _DELETE, "vois", "missing"),
    ("nuclide", _DELETE, "nuclide", "missing"),
    ("injected_activity_mbq", _DELETE, "injected_activity_mbq", "missing"),
    ("vois", {}, "vois", "empty"),
    ("vois", [1, 2], "vois", "expected a mapping"),
    ("nuclide", "  ", "nuclide", "expected a nuclide name"),
    ("injected_activity_mbq", -5.0, "injected_activity_mbq", "expected a number > 0"),
    ("injected_activity_mbq", "100", "injected_activity_mbq", "expected a number"),
    ("injected_activity_mbq", float("nan"), "injected_activity_mbq", "finite"),
    ("schema", "other/2", "schema", "unknown schema"),
    ("vois.lesion_1.mass_g", True, "vois.lesion_1.mass_g", "expected a number"),
    ("vois.lesion_1.dose_gy", {"kernel": {"sd": 1.0}}, "vois.lesion_1.dose_gy.kernel.value",
     "missing"),
    ("vois.lesion_1.dose_gy", {"kernel": {"value": 1.0, "sd": -1.0}},
     "vois.lesion_1.dose_gy.kernel.sd", ">= 0"),
    ("vois.lesion_1.dose_gy", {"kernel": {"value": "high"}},
     "vois.lesion_1.dose_gy.kernel.value", "expected a number"),
    ("vois.lesion_1.dose_gy", [1.0], "vois.lesion_1.dose_gy", "expected a mapping"),
    ("vois.lesion_1.fit", "mono", "vois.lesion_1.fit", "expected a mapping"),
    ("vois.lesion_1.pvc", 0.8, "vois.lesion_1.pvc", "expected a mapping"),
    ("vois.lesion_1.tac.times_h", _DELETE, "vois.lesion_1.tac.times_h", "missing"),
    ("vois.lesion_1.tac.activity_mbq", [1.0, 2.0], "vois.lesion_1.tac.activity_mbq",
     "expected 4 values"),
    ("vois.lesion_1.tac.activity_sd_mbq", [1.0], "vois.lesion_1.tac.activity_sd_mbq",
     "expected 4 values"),
    ("vois.lesion_1.tac.times_h", 4.0, "vois.lesion_1.tac.times_h", "expected a list"),
    ("vois.lesion_1.tac.fit_curve.a_mbq", _DELETE, "vois.lesion_1.tac.fit_curve.a_mbq",
     "missing"),
    ("vois.lesion_1.tac.fit_curve.lo", [0.0], "vois.lesion_1.tac.fit_curve.lo",
     "expected 41 values"),
    ("vois.lesion_1.tac.activity_mbq", [1.0, None, 2.0, 3.0],
     "vois.lesion_1.tac.activity_mbq[1]", "expected a number"),
    ("vois.lesion_1.dvh.curve.volume_fraction", [1.5] * 21,
     "vois.lesion_1.dvh.curve.volume_fraction", r"\[0, 1\]"),
    ("vois.lesion_1.dvh.curve.dose_gy", _DELETE, "vois.lesion_1.dvh.curve.dose_gy", "missing"),
    ("vois.lesion_1.dvh.d50", "x", "vois.lesion_1.dvh.d50", "expected a number"),
    ("vois.lesion_1.tia_mbq_h", {"sd": 2.0}, "vois.lesion_1.tia_mbq_h.value", "missing"),
])
def test_results_validation(path, value, field, match):
    with pytest.raises(InputError, match=match) as e:
        load_results(_mutated(path, value))
    _one_line_names(e, field)


def test_results_not_a_mapping():
    with pytest.raises(InputError, match="expected a mapping") as e:
        load_results(["vois"])
    _one_line_names(e, "results")


def test_results_from_file_names_the_file(tmp_path):
    good = tmp_path / "results.json"
    good.write_text(json.dumps(make_results()))
    d = load_results(good)
    assert [v.name for v in d.vois] == ["parotid_right", "lesion_1"]
    assert d.engines == ["kernel", "montecarlo"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_mutated("vois.lesion_1.mass_g", "heavy")))
    with pytest.raises(InputError, match="expected a number") as e:
        load_results(bad)
    _one_line_names(e, "vois.lesion_1.mass_g", str(bad))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UnreadableFileError, match="not valid JSON") as e:
        load_results(broken)
    _one_line_names(e, "results", str(broken))
    with pytest.raises(UnreadableFileError, match="cannot read results") as e:
        load_results(tmp_path / "missing.json")
    _one_line_names(e, "results", str(tmp_path / "missing.json"))


def test_voi_without_voxels_falls_back_to_centre():
    # no named VOI has voxels: slice through the image centre (shape // 2)
    imgs = make_images()
    empty = LabelMap(np.zeros(SHAPE, dtype=np.uint8), imgs.ct.geometry, names={1: "nothing"})
    name, idx = hottest_voi(orient(ReportImages(imgs.ct, imgs.dose, imgs.spect, empty)))
    assert name is None and idx == (8, 10, 10)


def test_warnings_on_the_first_page(tmp_path):
    # every results["warnings"] entry and the resolution's source appear on page 1 (PDF) and
    # before the dose table (HTML); none -> "None."
    res = make_results()
    res["warnings"] = [{"stage": "kinetics", "message": "prostate is dominated by spill-in"},
                       {"stage": "dose", "message": "organ S-value doses skipped: xyz"}]
    res["resolution"] = {"source": "estimated", "fwhm_mm": 12.6, "camera_fwhm_mm": 11.3,
                         "camera_sigma_mm": 0.7}
    html, pdf = write_report(res, tmp_path, images=make_images(), generated=GENERATED)
    text = html.read_text()
    head = text.split("<h2>Absorbed dose per VOI</h2>")[0]
    assert "<h2>Warnings (2)</h2>" in head
    assert "prostate is dominated by spill-in" in head and "organ S-value doses skipped" in head
    assert "resolution estimated" in head and "11.3" in head
    pdfium = pytest.importorskip("pypdfium2")
    doc = pdfium.PdfDocument(str(pdf))
    try:
        first = " ".join(doc[0].get_textpage().get_text_range().split())
    finally:
        doc.close()
    assert "Warnings (2)" in first and "prostate is dominated by spill-in" in first
    res["warnings"] = []
    html, _ = write_report(res, tmp_path / "none", images=make_images(), generated=GENERATED)
    assert "<h2>Warnings</h2>" in html.read_text()
    assert "None." in html.read_text()
