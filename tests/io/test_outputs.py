"""Output safety: refusal to overwrite, explicit overwrite, atomic replacement."""

import pytest

from theradose.errors import OutputExistsError
from theradose.io import atomic_path, prepare_output


def test_prepare_output_refuses_existing_file(tmp_path):
    out = tmp_path / "dose.nii.gz"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match=r"dose\.nii\.gz: output exists; pass overwrite=True"
                       ) as exc:
        prepare_output(out)
    assert "\n" not in str(exc.value)
    assert out.read_bytes() == b"old"  # untouched
    assert prepare_output(out, overwrite=True) == out


def test_prepare_output_creates_parent_folders(tmp_path):
    out = tmp_path / "a" / "b" / "c.json"
    assert prepare_output(out) == out
    assert out.parent.is_dir() and not out.exists()


def test_atomic_path_moves_into_place_with_the_same_suffix(tmp_path):
    out = tmp_path / "img.nii.gz"
    with atomic_path(out) as tmp:
        # same folder (same file system, so os.replace is atomic) and same double suffix, which
        # SimpleITK needs to choose the NIfTI writer with compression
        assert tmp.parent == tmp_path and tmp.name.endswith(".nii.gz") and tmp != out
        tmp.write_bytes(b"new")
        assert not out.exists()  # nothing visible before the block succeeds
    assert out.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["img.nii.gz"]  # no temporary left


def test_atomic_path_exception_leaves_no_output_and_no_temporary(tmp_path):
    out = tmp_path / "x.json"
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_exception_keeps_previous_file_under_overwrite(tmp_path):
    out = tmp_path / "x.json"
    out.write_text("previous")
    with pytest.raises(ValueError, match="boom"), atomic_path(out, overwrite=True) as tmp:
        tmp.write_text("partial")
        raise ValueError("boom")
    assert out.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_text("replaced")
    assert out.read_text() == "replaced"


def test_atomic_path_refuses_before_the_block_runs(tmp_path):
    out = tmp_path / "x.json"
    out.write_text("keep")
    ran = []
    with pytest.raises(OutputExistsError, match="output exists"), atomic_path(out):
        ran.append(True)
    assert ran == [] and out.read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_atomic_path_refuses_a_file_that_appeared_meanwhile(tmp_path):
    out = tmp_path / "x.json"
    with pytest.raises(OutputExistsError, match="output exists"), atomic_path(out) as tmp:
        tmp.write_text("mine")
        out.write_text("someone else's")  # another process wrote it during the block
    assert out.read_text() == "someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_atomic_path_gives_umask_permissions(tmp_path):
    # mkstemp creates 0600 files; the written output must follow the umask like open() would.
    import os

    from theradose.io._outputs import atomic_path

    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("x")
        assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
