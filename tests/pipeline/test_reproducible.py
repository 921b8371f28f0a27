"""Bit-reproducible runs: the same study, configuration and theradose give the same bytes.

Two runs of the small 8 mm phantom with registration enabled (the default rigid CT↔CT, which
was multi-threaded and differed in ~5 000 values of results.json between runs before it ran on
one thread): ``results.json`` is identical apart from ``provenance`` (creation time, timings,
cache hits), and so are the NIfTI maps, RT Dose and SEG (UIDs and dates derived from the
inputs, not drawn or read from the clock); the study folder is unchanged.
"""

from __future__ import annotations

import hashlib
import json

import pytest

pytestmark = pytest.mark.slow

CFG = {"study": {"calibration_cps_per_mbq": 9.5}, "registration": {"enabled": True},
       "dose": {"engines": ["led", "organ_svalues"]}, "outputs": {"report": False}}


def _checksums(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".cache" not in p.parts}


def test_two_runs_give_identical_outputs(small_patient, tmp_path):
    import SimpleITK as sitk

    from theradose.pipeline import run_pipeline

    study = small_patient.dicom
    inputs = _checksums(study)
    # separate folders: nothing is reused from a cache, each run registers afresh
    for name in ("a", "b"):
        run_pipeline(study, tmp_path / name, CFG)
    assert _checksums(study) == inputs  # the study is only read
    a, b = _checksums(tmp_path / "a"), _checksums(tmp_path / "b")
    assert a.keys() == b.keys()
    assert {"tia.nii.gz", "dose_led.nii.gz", "rtdose.dcm", "seg.dcm"} <= a.keys()
    ra = json.loads((tmp_path / "a" / "results.json").read_text())
    rb = json.loads((tmp_path / "b" / "results.json").read_text())
    assert len(ra["registration"]) == 4 and all(q["ok"] for q in ra["registration"])
    prov_a, prov_b = ra.pop("provenance"), rb.pop("provenance")
    assert ra == rb
    # in provenance only the creation time, the timings and the cache hits may differ
    for p in (prov_a, prov_b):
        for k in ("created", "timings_s", "registration_seconds", "cache_hits"):
            p.pop(k)
        p["voxel_fit"]["provenance"].pop("elapsed_s", None)
    assert prov_a == prov_b
    # every output file byte for byte, except the ITK transforms: HDF5 stamps each object
    # with its write time (not settable through SimpleITK); their parameters are compared
    for name in a:
        if name.startswith("registration/"):
            ta = sitk.ReadTransform(str(tmp_path / "a" / name))
            tb = sitk.ReadTransform(str(tmp_path / "b" / name))
            assert ta.GetParameters() == tb.GetParameters(), name
            assert ta.GetFixedParameters() == tb.GetFixedParameters(), name
        elif name != "results.json":
            assert a[name] == b[name], name
