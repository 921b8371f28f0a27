"""Output safety: refusal to overwrite, explicit overwrite, atomic replacement."""

import os

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


# --- output_transaction: staged outputs published whole, under a lock --------------------------

def _managed(name: str) -> bool:
    return name in ("results.json", "a.txt", "b.txt", "sub") or name.startswith(".a.")


def _tree(folder):
    return {str(p.relative_to(folder)): (p.read_text() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _first_run(out):
    from theradose.io._outputs import output_transaction

    with output_transaction(out, marker="results.json", managed=_managed) as st:
        (st / "a.txt").write_text("old a")
        (st / "b.txt").write_text("old b")
        (st / "results.json").write_text("old")
    (out / ".cache").mkdir()
    (out / ".cache" / "x.pkl").write_text("cached")
    (out / "notes.txt").write_text("the user's")


def test_transaction_publishes_whole_and_keeps_cache_and_user_files(tmp_path):
    from theradose.io._outputs import output_transaction

    out = tmp_path / "out"
    _first_run(out)
    with output_transaction(out, marker="results.json", managed=_managed, overwrite=True) as st:
        assert st.parent == out and st.name == f".staging-{os.getpid()}"
        assert (out / ".lock").read_text().strip() == str(os.getpid())
        (st / "a.txt").write_text("new a")
        (st / "sub").mkdir()
        (st / "sub" / "c.txt").write_text("new c")
        (st / "results.json").write_text("new")
        assert (out / "results.json").read_text() == "old"  # nothing visible before the end
    # b.txt of the earlier run is gone (no mix); the cache and the user's file are untouched;
    # no lock, staging or set-aside folder is left
    assert _tree(out) == {".cache": None, ".cache/x.pkl": "cached", "a.txt": "new a",
                          "notes.txt": "the user's", "results.json": "new", "sub": None,
                          "sub/c.txt": "new c"}


def test_transaction_failure_publishes_nothing(tmp_path):
    from theradose.io._outputs import output_transaction

    out = tmp_path / "out"
    _first_run(out)
    before = _tree(out)
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), output_transaction(
                out, marker="results.json", managed=_managed, overwrite=True) as st:
            (st / "a.txt").write_text("half")
            raise exc
        assert _tree(out) == before


def test_transaction_refuses_published_folder_without_overwrite(tmp_path):
    from theradose.io._outputs import output_transaction

    out = tmp_path / "out"
    _first_run(out)
    ran = []
    with pytest.raises(OutputExistsError, match=r"results\.json: output exists"), \
            output_transaction(out, marker="results.json", managed=_managed):
        ran.append(1)
    assert ran == [] and not (out / ".lock").exists()


def test_transaction_interrupted_publish_rolls_back(tmp_path):
    # the hook raises when half of the new outputs are in: the old ones come back whole
    from theradose.io._outputs import output_transaction

    out = tmp_path / "out"
    _first_run(out)
    before = _tree(out)

    def hook(point):
        if point == "publish:half":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), output_transaction(
            out, marker="results.json", managed=_managed, overwrite=True, hook=hook) as st:
        for n in ("a.txt", "b.txt", "results.json"):
            (st / n).write_text("new")
    assert _tree(out) == before


def test_transaction_cleans_what_a_killed_run_left(tmp_path):
    # a run killed (SIGKILL) in its publish: the old outputs set aside with the marker, one
    # new file moved in, its staging folder, a lock file of a dead process, a temporary file
    from theradose.io._outputs import output_transaction

    out = tmp_path / "out"
    _first_run(out)
    before = _tree(out)
    dead = tmp_path / "dead"
    dead.mkdir()
    aside = out / ".replaced-99999999"
    aside.mkdir()
    for n in ("results.json", "a.txt", "b.txt"):
        os.replace(out / n, aside / n)
    (out / "a.txt").write_text("new, half published")
    (out / ".staging-99999999").mkdir()
    (out / ".staging-99999999" / "results.json").write_text("new")
    (out / ".lock").write_text("99999999\n")  # no process holds it
    (out / ".a.xyz.txt").write_text("temporary")
    class Leave(Exception):
        pass

    with pytest.raises(Leave), output_transaction(
            out, marker="results.json", managed=_managed, overwrite=True):
        assert _tree(out) == {**before, ".lock": f"{os.getpid()}\n",
                              f".staging-{os.getpid()}": None}
        raise Leave  # without publishing
    assert _tree(out) == before
    # unpublished fragments (no marker, nothing set aside) are removed without overwrite
    (out / "results.json").unlink()
    with output_transaction(out, marker="results.json", managed=_managed) as st:
        assert sorted(p.name for p in out.iterdir()) == [
            ".cache", ".lock", f".staging-{os.getpid()}", "notes.txt"]
        (st / "results.json").write_text("again")
    assert (out / "results.json").read_text() == "again"


def test_transaction_lock_refuses_a_second_run(tmp_path):
    from theradose.io._outputs import output_transaction

    out = tmp_path / "out"
    with output_transaction(out, marker="results.json", managed=_managed):
        # flock is per open file: a second open in this same process conflicts like another
        # process would
        with pytest.raises(OutputExistsError) as exc, output_transaction(
                out, marker="results.json", managed=_managed):
            pass
        msg = str(exc.value)
        assert msg == (f"{out}: another theradose run (pid {os.getpid()}) is writing this "
                       "output folder; wait for it to finish or choose another folder")
        assert (out / ".lock").exists()  # the refused run did not remove the holder's lock
    assert sorted(p.name for p in out.iterdir()) == []
