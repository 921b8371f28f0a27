"""Output safety: never overwrite silently, never leave half-written files."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from theradose.errors import OutputExistsError

__all__ = ["atomic_path", "prepare_output"]


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
