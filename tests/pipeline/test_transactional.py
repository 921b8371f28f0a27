"""Transactional outputs: a killed run publishes nothing, its rerun resumes and completes.

``theradose run`` runs as a subprocess on the small 8 mm phantom (``conftest.py``: registration
off, LED + organ S-values, no report) and is killed by the test hook
``THERADOSE_TEST_KILL_AT=<stage>[:<SIGNAL>]`` (``pipeline/_run.py``: the process signals itself
when that stage starts). The rerun without ``--overwrite`` must complete from the cache, equal
an uninterrupted run (``results.json`` apart from ``provenance``; the map, RT Dose and SEG
bytes) and leave nothing behind (no staging folder, temporary file or lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from theradose._logging import StageProgress
from theradose.pipeline._cache import code_fingerprint

STAGES = ["registration", "vois", "kinetics", "dose", "analysis", "outputs", "publish",
          "publish:half"]
TOML = """[study]
calibration_cps_per_mbq = 9.5
[registration]
enabled = false
[dose]
engines = ["led", "organ_svalues"]
[outputs]
report = false
"""


def _cli(study, out, cfg, *args, kill=None):
    env = {k: v for k, v in os.environ.items() if k != "THERADOSE_TEST_KILL_AT"}
    if kill:
        env["THERADOSE_TEST_KILL_AT"] = kill
    return subprocess.run(
        [sys.executable, "-c", "from theradose.cli import run; run()", "run", str(study),
         "--out", str(out), "--config", str(cfg), *args],
        env=env, capture_output=True, text=True, timeout=300)


def _comparable(res: dict) -> dict:
    """results.json without what legitimately differs between runs (provenance)."""
    return {k: v for k, v in res.items() if k != "provenance"}


def _differences(a, b, path: str = "") -> list[str]:
    """Paths of the leaves where two JSON values differ (a readable assertion message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _digests(out) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and ".cache" not in p.parts}


def _assert_clean(out, ref_out) -> None:
    """Only the outputs (as in ``ref_out``) and the cache's entries: no staging, temporary, lock."""
    assert {p.name for p in out.iterdir()} == {p.name for p in ref_out.iterdir()}
    assert ".cache" in {p.name for p in out.iterdir()}
    cache = sorted(p.name for p in (out / ".cache").iterdir())
    assert cache and all(n.endswith(".pkl") and not n.startswith(".") for n in cache), cache


@pytest.fixture(scope="module")
def reference(small_patient, tmp_path_factory):
    """An uninterrupted run (in-process) of the configuration in ``TOML``."""
    from theradose.pipeline import run_pipeline

    base = tmp_path_factory.mktemp("reference")
    cfg = base / "fast.toml"
    cfg.write_text(TOML)
    run_pipeline(small_patient.dicom, base / "out", cfg)
    res = json.loads((base / "out" / "results.json").read_text())
    return small_patient.dicom, cfg, base / "out", res


def _kill_then_rerun(reference, tmp_path, point, sig):
    study, cfg, ref_out, ref = reference
    out = tmp_path / "out"
    code = code_fingerprint.__wrapped__()  # the cache keys hash theradose's source
    killed = _cli(study, out, cfg, kill=f"{point}:{sig}")
    assert killed.returncode == (-9 if sig == "SIGKILL" else 1), killed.stderr
    assert not (out / "results.json").exists()  # nothing published
    rerun = _cli(study, out, cfg)  # no --overwrite: an unpublished folder is not "output exists"
    assert rerun.returncode == 0, rerun.stderr
    res = json.loads((out / "results.json").read_text())
    assert _comparable(res) == _comparable(ref), _differences(_comparable(res),
                                                              _comparable(ref))[:20]
    # stages finished before the kill were cached by the killed run and reused (unless the
    # source was edited meanwhile, which changes every key: a working tree being edited)
    done = STAGES[:STAGES.index(point)]
    if code_fingerprint.__wrapped__() == code:
        assert set(res["provenance"]["cache_hits"]) == {"registration", "kinetics"} & set(done)
    assert _digests(out).keys() == _digests(ref_out).keys()
    for name, digest in _digests(out).items():
        if name != "results.json":
            assert digest == _digests(ref_out)[name], name
    _assert_clean(out, ref_out)


@pytest.mark.parametrize(("point", "sig"), [("kinetics", "SIGKILL"), ("outputs", "SIGINT")])
def test_killed_run_resumes(reference, tmp_path, point, sig):
    _kill_then_rerun(reference, tmp_path, point, sig)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("point", STAGES)
def test_killed_run_resumes_at_every_stage(reference, tmp_path, point, sig):
    if (point, sig) in (("kinetics", "SIGKILL"), ("outputs", "SIGINT")):
        pytest.skip("in the default run")
    _kill_then_rerun(reference, tmp_path, point, sig)


def test_killed_overwrite_keeps_the_earlier_outputs(reference, tmp_path):
    # --overwrite killed half-way through moving the new outputs in: the next run puts the
    # earlier outputs back whole (and, without --overwrite, refuses to replace them)
    study, cfg, ref_out, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)  # a published run, with its cache
    before = _digests(out)
    killed = _cli(study, out, cfg, "--overwrite", kill="publish:half:SIGKILL")
    assert killed.returncode == -9
    assert not (out / "results.json").exists()
    again = _cli(study, out, cfg)
    assert again.returncode == 2
    assert again.stderr.strip() == f"error: {out / 'results.json'}: output exists; pass " \
                                   "overwrite=True (CLI: --overwrite) or choose another folder"
    assert _digests(out) == before
    _assert_clean(out, ref_out)


def test_second_run_on_the_same_folder_is_refused(reference, tmp_path):
    from theradose.io._outputs import _FolderLock

    study, cfg, _, _ = reference
    out = tmp_path / "out"
    out.mkdir()
    lock = _FolderLock(out)
    lock.acquire()  # as a run in progress holds it
    try:
        r = _cli(study, out, cfg)
    finally:
        lock.release()
    assert r.returncode == 2
    assert r.stderr.strip() == (f"error: {out}: another theradose run (pid {os.getpid()}) is "
                                "writing this output folder; wait for it to finish or choose "
                                "another folder")
    assert sorted(p.name for p in out.iterdir()) == []


# --- progress ----------------------------------------------------------------------------------

class _Tty:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_stage_progress_lines_on_a_terminal_only(monkeypatch):
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.setenv("THERADOSE_PROGRESS", "1")
    stages = StageProgress(2, label="demo")
    with stages.stage("simulate"):
        pass
    with pytest.raises(KeyboardInterrupt), stages.stage("pipeline"):
        raise KeyboardInterrupt
    lines = tty.text.splitlines()
    assert lines[0] == "[demo 1/2] simulate …"
    assert lines[1].startswith("[demo 1/2] simulate: ") and lines[1].endswith(" s")
    assert lines[2] == "[demo 2/2] pipeline …"
    assert lines[3].startswith("[demo 2/2] pipeline: interrupted after ")
    # not enabled (the library default, --no-progress / --quiet) or not a terminal: silent
    for env, atty in (("0", True), ("1", False)):
        tty = _Tty()
        tty.isatty = lambda atty=atty: atty
        monkeypatch.setattr(sys, "stderr", tty)
        monkeypatch.setenv("THERADOSE_PROGRESS", env)
        with StageProgress(1).stage("x"):
            pass
        assert tty.text == ""
