"""Every failure of the CLI is one line on stderr: ``error: <file>: <field>: <what>``.

Each case below was a traceback, or an error naming the wrong thing, before issue 17: the
test runs ``theradose`` in-process and asserts the exit status, that stderr is exactly one
line starting ``error: ``, and that it names the file and the field at fault.
"""

from __future__ import annotations

import errno
import io
import warnings

import numpy as np
import pytest

from theradose.cli import cli, main

# ------------------------------------------------------------------------------------ helpers


def _err_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(autouse=True)
def _restore_showwarning():
    yield
    warnings.showwarning = warnings._showwarning_orig


# ------------------------------------------------------- configuration: checked before any work

CONFIGS = [
    # (TOML text or bytes, field named, words of the message)
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "config", "binary file"),
    (b"[study]\nnuclide = \"Lu-177\xff\"\n", "config", "not UTF-8"),
    ("[study\n", "config", "not valid TOML"),
    ("[registration]\nseed = 1e30\n", "registration.seed", "[0, 4294967294]"),
    ("[registration]\nseed = 4294967295\n", "registration.seed", "32-bit"),
    ("[registration]\nreference = 1.5\n", "registration.reference", "integer"),
    ("[kinetics]\nmodels = ['mono', 'foo']\n", "kinetics.models", "unknown model 'foo'"),
    ("[kinetics]\nvoxel_models = ['gauss']\n", "kinetics.voxel_models", "unknown model 'gauss'"),
    ("[kinetics]\nvoxel_models = ['mono', 'hybrid']\n", "kinetics.voxel_models", "fallback"),
    ("[kinetics]\ncriterion = 'aic'\n", "kinetics.criterion", "aicc, bic"),
    ("[kinetics]\nfwhm_mm = nan\n", "kinetics.fwhm_mm", "finite"),
    ("[kinetics]\nrelative_sigma = 1e308\n", "kinetics.relative_sigma", "(0, 10]"),
    ("[study]\nnuclide = 'Lu-1777'\n", "study.nuclide", "unknown nuclide"),
    ("[study]\ninjection_time = 'monday'\n", "study.injection_time", "ISO 8601"),
    ("[study]\ninjected_activity_mbq = inf\n", "study.injected_activity_mbq", "finite"),
    ("[vois]\ninclude = ['liver', '']\n", "vois.include", "empty name"),
    ("[vois]\nexclude = [3]\n", "vois.exclude", "list of strings"),
    ("[dose.kernel]\nbogus = 1\n", "dose.kernel.bogus", "takes no option 'bogus'"),
    ("[dose.kernel]\nphoton_correction = 'magic'\n", "dose.kernel.photon_correction",
     "unknown photon_correction"),
    ("[dose.montecarlo]\nn_histories = inf\n", "dose.montecarlo.n_histories", "finite"),
    ("[dose.montecarlo]\nelectrons = 'far'\n", "dose.montecarlo.electrons", "unknown electrons"),
    ("[dose.led]\nphotons = 'all'\n", "dose.led.photons", "unknown photons mode"),
    ("[dose]\nengines = ['kernel', 'gate']\n", "dose.engines", "accepted"),
]


@pytest.mark.parametrize("text,field,words", CONFIGS, ids=[c[1] + ":" + c[2] for c in CONFIGS])
def test_run_config_errors_before_any_work(tmp_path, capsys, text, field, words):
    cfg = tmp_path / "bad.toml"
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    else:
        cfg.write_text(text, encoding="utf-8")
    # the study folder does not even exist: the configuration is refused first
    rc = main(["run", str(tmp_path / "no-study"), "--out", str(tmp_path / "out"),
               "--config", str(cfg)])
    line = _err_line(capsys)
    assert rc == 2
    assert line.startswith(f"error: {cfg}: {field}: "), line
    assert words in line
    assert not (tmp_path / "out").exists()


def test_run_pipeline_rejects_unknown_model_with_report_off(tmp_path):
    """Before: every VOI's fit failed, every TIA null, exit 0 when the report was off."""
    from theradose.errors import InputError
    from theradose.pipeline import run_pipeline

    cfg = {"kinetics": {"models": ["mono", "gamma_variate"]}, "outputs": {"report": False}}
    with pytest.raises(InputError, match=r"kinetics\.models: unknown model 'gamma_variate'"):
        run_pipeline(tmp_path / "no-study", tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()


def test_default_config_still_valid():
    from theradose.pipeline import PipelineConfig

    cfg = PipelineConfig.from_dict({"dose": {"engines": ["kernel"], "kernel": {"medium": "water"},
                                             "montecarlo": {"n_histories": 1000, "seed": 3}},
                                    "registration": {"seed": 4294967294},
                                    "study": {"nuclide": "177Lu",
                                              "injection_time": "2024-05-01T09:30"}})
    assert cfg.section("registration")["seed"] == 2**32 - 2
    assert cfg.section("dose")["montecarlo"] == {"n_histories": 1000, "seed": 3}


# ------------------------------------------------------------------- command-line arguments

ARGS = [
    # fit with values whose squares overflow: SVD did not converge (traceback)
    (["fit", "--times-h", "4,24,96,168", "--values", "1e308,1e308,1e308,1e308"], "--values",
     "above 1e+100"),
    (["fit", "--times-h", "4,24,96,1e308", "--values", "1,2,1,0.5"], "--times-h",
     "at most 100000 h"),
    (["fit", "--times-h", "4,24,96,168", "--values", "1,2,1,0.5", "--sigma", "1e308,1,1,1"],
     "--sigma", "above 1e+100"),
    (["fit", "--times-h", "4,24,96,168", "--values", "1,2,1,0.5", "--relative-sigma", "1e308"],
     "--relative-sigma", "> 0 and at most 10"),
    (["fit", "--times-h", "4,24,96,168", "--values", "1,2,1,0.5", "--models", "mono,gauss"],
     "--models", "unknown model 'gauss'"),
    (["fit", "--times-h", "4,24,96,168", "--values", "1,2,1,0.5", "--calibration-u", "2"],
     "--calibration-u", "relative uncertainty"),
    # kernel box of 1e9 mm: the int64 voxel count wrapped and np.zeros raised (traceback)
    (["kernel", "--nuclide", "Lu-177", "--voxel-mm", "4", "--radius-mm", "1e9"],
     "--radius-mm", "more than"),
    # SPECT sensitivity: 1e308 ran to exit 0 with every activity ~0; one bound for the three
    # commands (pipeline/_config.check_calibration), checked before any file is read
    (["run", "/nonexistent", "--out", "x", "--calibration-cps-per-mbq", "1e308"],
     "--calibration-cps-per-mbq", "in [0.001, 1e+06], got 1e+308"),
    (["study", "/nonexistent", "--calibration-cps-per-mbq", "1e-300"],
     "--calibration-cps-per-mbq", "in [0.001, 1e+06], got 1e-300"),
    (["convert", ".", "--out", "x", "--calibration-cps-per-mbq", "1e308"],
     "--calibration-cps-per-mbq", "clinical SPECT 1-100"),
    (["study", "/nonexistent", "--ct-tolerance-h", "1e308"], "--ct-tolerance-h",
     "in (0, 336], got 1e+308"),
    (["study", "/nonexistent", "--ct-tolerance-h", "0"], "--ct-tolerance-h", "got 0.0"),
    # bad values of typed options: click's usage block becomes one line
    (["simulate", "--out", "x", "--seed", "1e30"], "--seed", "not a valid integer"),
    (["simulate", "--out", "x", "--seed", str(2**32)], "--seed", "4294967295"),
    (["demo", "--seed", "-1"], "--seed", "range"),
]


@pytest.mark.parametrize("argv,field,words", ARGS, ids=[f"{a[0][0]} {a[1]}" for a in ARGS])
def test_bad_arguments_one_line(capsys, argv, field, words):
    rc = main(argv)
    line = _err_line(capsys)
    assert rc == 2
    assert line.startswith(f"error: {field}: "), line
    assert words in line


def test_unknown_option_one_line_with_help_hint(capsys):
    assert main(["info", "--bogus"]) == 2
    line = _err_line(capsys)
    assert "No such option" in line and "theradose info --help" in line


def test_quiet_and_verbose_exclude_each_other(capsys):
    assert main(["-q", "-v", "info"]) == 2
    assert "exclude each other" in _err_line(capsys)


# ------------------------------------------------------------------------ DICOM administration

def _nm_with(tmp_path, half_life: bytes, total_dose: bytes):
    """An NM file whose RadiopharmaceuticalInformationSequence holds raw DS bytes."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence

    it = Dataset()
    it.RadionuclideHalfLife = "574300"
    it.RadionuclideTotalDose = "7.4e9"
    it.RadiopharmaceuticalStartDateTime = "20240101100000"
    it.Radionuclide = "Lu-177"
    ds = Dataset()
    ds.RadiopharmaceuticalInformationSequence = Sequence([it])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    raw = buf.getvalue().replace(b"574300", half_life).replace(b"7.4e9 ", total_dose)
    return pydicom.dcmread(io.BytesIO(raw), force=True)


@pytest.mark.parametrize("half_life,dose,field,words", [
    (b"abcdef", b"7.4e9 ", "RadionuclideHalfLife", "not a decimal number (DS), got 'abcdef'"),
    (b"574300", b"x.y.z ", "RadionuclideTotalDose", "not a decimal number (DS), got 'x.y.z'"),
    (b"inf   ", b"7.4e9 ", "RadionuclideHalfLife", "finite"),
    (b"574300", b"nan   ", "RadionuclideTotalDose", "finite"),
])
def test_non_numeric_radiopharmaceutical_values(tmp_path, half_life, dose, field, words):
    from theradose.errors import DicomTagError
    from theradose.io._radiopharmaceutical import administration_from_dataset

    ds = _nm_with(tmp_path, half_life, dose)
    with pytest.raises(DicomTagError) as info:
        administration_from_dataset(ds, file="nm.dcm")
    assert str(info.value).startswith(f"nm.dcm: {field}: ") and words in str(info.value)


def test_numeric_radiopharmaceutical_values_still_read(tmp_path):
    from theradose.io._radiopharmaceutical import administration_from_dataset

    adm, half_life = administration_from_dataset(_nm_with(tmp_path, b"574300", b"7.4e9 "),
                                                 file="nm.dcm")
    assert adm.injected_activity_mbq == 7400.0 and half_life == 574300.0  # 7.4e9 Bq / 1e6


# -------------------------------------------------------------- environment: OSError, bugs

def _probe(name, exc):
    @cli.command(name, hidden=True)
    def _cmd():
        raise exc

    return name


@pytest.fixture
def probes():
    names = []
    yield names
    for n in names:
        cli.commands.pop(n, None)


def test_read_only_output_folder(tmp_path, capsys, monkeypatch):
    """EACCES/EROFS while writing: ``error: <path>: <system message> (<ERRNO>)``, status 2."""
    import theradose.io._outputs as outputs

    def refuse(self, *a, **k):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(outputs.Path, "mkdir", refuse)
    out = tmp_path / "ro" / "k.npy"
    rc = main(["kernel", "--nuclide", "Lu-177", "--voxel-mm", "8", "--samples", "64",
               "--no-cache", "--out", str(out)])
    line = _err_line(capsys)
    assert rc == 2
    assert line == f"error: {tmp_path / 'ro'}: Read-only file system (EROFS)"


def test_disk_full_names_the_output(tmp_path, capsys, monkeypatch):
    """ENOSPC from write() carries no file name: the command's --out is named instead."""
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    out = tmp_path / "k.npy"
    rc = main(["kernel", "--nuclide", "Lu-177", "--voxel-mm", "8", "--samples", "64",
               "--no-cache", "--out", str(out)])
    line = _err_line(capsys)
    assert rc == 2
    assert line == f"error: {out}: No space left on device (ENOSPC) while writing the outputs"
    assert not out.exists()  # nothing half-written


def test_dev_full_is_a_one_line_error(tmp_path, capsys, probes):
    """A real ENOSPC: writing to /dev/full."""
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")

    def write_full():
        with open("/dev/full", "w") as fh:
            fh.write("x" * 10)
            fh.flush()

    @cli.command("_full_probe", hidden=True)
    def _cmd():
        write_full()

    probes.append("_full_probe")
    assert main(["_full_probe"]) == 2
    line = _err_line(capsys)
    assert "No space left on device (ENOSPC)" in line


def test_internal_error_one_line_exit_1(capsys, probes):
    probes.append(_probe("_bug_probe", ZeroDivisionError("division by zero")))
    assert main(["_bug_probe"]) == 1
    line = _err_line(capsys)
    assert line == ("error: internal error: ZeroDivisionError: division by zero; rerun with -vv "
                    "for the traceback")


def test_internal_error_traceback_with_vv(capsys, probes):
    probes.append(_probe("_bug_probe2", KeyError("x")))
    assert main(["-vv", "_bug_probe2"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == "error: internal error: KeyError: 'x'"


def test_study_hints_fit_the_command(capsys, monkeypatch):
    """``load_study`` hints at ``theradose study``'s flags; ``run`` takes them in --config."""
    import theradose.pipeline as pipeline
    from theradose.errors import InputError

    msg = ("no administration in the image headers or sidecars; pass nuclide, "
           "injected_activity_mbq (CLI: --nuclide, --activity-mbq, --injection-time) or add "
           "\"administration\" to the sidecars")

    def fake_run_pipeline(*a, **k):
        raise InputError(msg, file="/s", field="nuclide")

    monkeypatch.setattr(pipeline, "run_pipeline", fake_run_pipeline)
    assert main(["run", "/s", "--out", "/o"]) == 2
    line = _err_line(capsys)
    assert "--nuclide" not in line and "--activity-mbq" not in line
    assert line.startswith("error: /s: nuclide: no administration")
    assert ("(theradose run: nuclide, injected_activity_mbq, injection_time in the [study] "
            "section of --config)") in line
    # theradose study has the flags: the hint stays as it is
    from theradose.cli._main import _fit_hint
    assert _fit_hint(msg, cli.commands["study"]) == msg


def test_overwrite_hint_kept_where_the_flag_exists(capsys, probes):
    from theradose.errors import OutputExistsError

    probes.append(_probe("_exists_probe",
                         OutputExistsError("o.json: output exists; pass overwrite=True "
                                           "(CLI: --overwrite) or choose another path")))
    assert main(["_exists_probe"]) == 2  # the probe has no --overwrite: hint dropped
    assert "--overwrite" not in _err_line(capsys)


def test_quiet_turns_progress_off_keeps_warnings(capsys, probes, monkeypatch):
    import os

    from theradose.errors import TheradoseWarning

    monkeypatch.setenv("THERADOSE_PROGRESS", "1")

    @cli.command("_quiet_probe", hidden=True)
    def _cmd():
        warnings.warn("a.dcm: Units: odd value", TheradoseWarning, stacklevel=1)
        assert os.environ["THERADOSE_PROGRESS"] == "0"

    probes.append("_quiet_probe")
    assert main(["-q", "_quiet_probe"]) == 0
    assert capsys.readouterr().err == "warning: a.dcm: Units: odd value\n"
