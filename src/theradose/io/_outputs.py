"""Output safety: never overwrite silently, never leave half-written files or folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from theradose.errors import OutputExistsError

__all__ = ["atomic_path", "output_transaction", "prepare_output"]


def prepare_output(path: str | Path, *, overwrite: bool = False) -> Path:
    """Check that ``path`` may be written and create its parent folders.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.

    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p}: output exists; pass overwrite=True (CLI: --overwrite) "
                                "or choose another path")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it into place atomically.

    A failure inside the block removes the temporary file and leaves ``path`` untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "a.txt").read_text()
    'hello'

    """
    final = prepare_output(path, overwrite=overwrite)
    suffix = "".join(final.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if final.exists() and not overwrite:  # appeared meanwhile
            raise OutputExistsError(f"{final}: output exists; pass overwrite=True")
        if tmp.exists():  # mkstemp makes 0600 files: give them the usual umask permissions
            tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


# --- transactional output folders -------------------------------------------------------------

#: Name of the lock file inside an output folder (holds the pid of the run writing it).
LOCK_NAME = ".lock"
_STAGING = ".staging-"
_REPLACED = ".replaced-"


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (``os.kill(pid, 0)``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _FolderLock:
    """Exclusive lock of an output folder: ``OUT/.lock`` holding the owner's pid.

    ``fcntl.flock`` where available (released by the kernel when the process dies, even by
    SIGKILL, so a leftover file is never a stale lock); elsewhere ``O_EXCL`` creation with
    stale-lock detection by pid liveness. The file is removed on release.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def _busy(self, pid: str) -> OutputExistsError:
        who = f" (pid {pid})" if pid else ""
        return OutputExistsError(f"{self.folder}: another theradose run{who} is writing this "
                                 "output folder; wait for it to finish or choose another folder")

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            self._acquire_excl()
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                raise self._busy(pid) from None
            # the holder before us may have unlinked the file between our open and our flock:
            # then we locked an orphan inode; start again on the file now at the path
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def _acquire_excl(self) -> None:  # pragma: no cover - not POSIX
        for _ in range(2):
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = self.path.read_text(errors="replace").strip()
                if pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid():
                    raise self._busy(pid) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            os.write(self.fd, f"{os.getpid()}\n".encode())
            return
        raise self._busy("")

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still holding it: no one locks a stale file
        os.close(self.fd)
        self.fd = None


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without directory fsync
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def output_transaction(out: str | Path, *, marker: str, managed: Callable[[str], bool],
                       overwrite: bool = False,
                       hook: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Write a run's outputs into a staging folder and publish them whole into ``out``.

    Yields ``OUT/.staging-<pid>``, an empty folder on the same file system as ``out``. When
    the block succeeds, the staged entries are moved into ``out`` with ``marker`` (e.g.
    ``results.json``) last, so that ``out`` holds the marker only when every output of the run
    is in place; the previous outputs (entries for which ``managed(name)`` is true) are first
    moved aside, marker first, and deleted after the new ones are in, so outputs of two runs
    never mix. Entries ``managed`` does not claim (a user's own files, the stage cache
    ``.cache``) are never touched. If the block raises (an error, ``KeyboardInterrupt``),
    nothing is published and the staging folder is removed.

    The whole is done under an exclusive lock (``OUT/.lock``, with the pid): a second run on
    the same folder is refused. After taking the lock, leftovers of runs that died (SIGKILL,
    power loss) are cleaned: staging folders are removed; a publish cut short after the old
    outputs were moved aside is rolled back (the old outputs return); outputs without the
    marker (a publish cut short, or a partial folder of an older theradose) are removed.

    Parameters
    ----------
    out : str or Path
        Output folder (created, with its parents).
    marker : str
        Name of the entry whose presence means "published" (moved in last, out first).
    managed : callable
        ``managed(name) -> bool``: whether an entry of ``out`` is an output of this program
        (replaced by a new run, cleaned when unpublished). Hidden names are passed too.
    overwrite : bool
        Replace published outputs; otherwise a present ``marker`` raises before anything runs.
    hook : callable, optional
        Called with ``"publish"`` before the old outputs are moved aside and
        ``"publish:half"`` when half of the new ones are in (used by the tests to interrupt a
        publish).

    Raises
    ------
    OutputExistsError
        ``OUT/<marker>`` exists and ``overwrite`` is False, or another run holds the lock.

    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    lock = _FolderLock(folder)
    lock.acquire()
    staging = folder / f"{_STAGING}{os.getpid()}"
    try:
        _recover(folder, marker, managed)
        if (folder / marker).exists() and not overwrite:
            raise OutputExistsError(f"{folder / marker}: output exists; pass overwrite=True "
                                    "(CLI: --overwrite) or choose another folder")
        staging.mkdir()
        try:
            yield staging
            _publish(folder, staging, marker, managed, hook or (lambda _: None))
        except BaseException:
            _remove(staging)
            _recover(folder, marker, managed)  # a publish cut short: the old outputs return
            raise
        _remove(staging)
    finally:
        lock.release()


def _recover(folder: Path, marker: str, managed: Callable[[str], bool]) -> None:
    """Clean what dead runs left in ``folder`` (caller holds the lock: no other run is live)."""
    replaced = sorted(p for p in folder.glob(f"{_REPLACED}*") if p.is_dir())
    if not (folder / marker).exists():
        for old in replaced:
            if (old / marker).exists():  # a publish cut short after moving these aside
                for p in folder.iterdir():
                    if managed(p.name) and p.name != marker:
                        _remove(p)
                for p in sorted(old.iterdir(), key=lambda q: q.name == marker):
                    os.replace(p, folder / p.name)
                break
        else:  # unpublished: whatever output is here is a fragment of an unfinished run
            for p in folder.iterdir():
                if managed(p.name):
                    _remove(p)
    for p in [*replaced, *folder.glob(f"{_STAGING}*")]:
        _remove(p)


def _publish(folder: Path, staging: Path, marker: str, managed: Callable[[str], bool],
             hook: Callable[[str], None]) -> None:
    hook("publish")
    new = sorted(staging.iterdir(), key=lambda q: (q.name == marker, q.name))
    names = {p.name for p in new}
    old = sorted((p for p in folder.iterdir() if managed(p.name) or p.name in names),
                 key=lambda q: (q.name != marker, q.name))
    aside = folder / f"{_REPLACED}{os.getpid()}"
    if old:
        aside.mkdir()
        for p in old:  # marker first: from here on the folder reads as unpublished
            os.replace(p, aside / p.name)
    for i, p in enumerate(new):
        if i == len(new) // 2:
            hook("publish:half")
        os.replace(p, folder / p.name)
    _fsync_dir(folder)
    _remove(aside)
