"""Walking a study folder: every file once, symbolic links followed, nothing dropped silently."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from theradose.errors import UnreadableFileError

__all__ = ["study_files"]

log = logging.getLogger("theradose")


def _skip(path: str | Path, reason: str) -> dict[str, str]:
    log.info("%s: skipped: %s", path, reason)
    return {"file": str(path), "reason": reason}


def study_files(folder: str | Path) -> tuple[list[Path], list[dict[str, str]]]:
    """Every regular file below ``folder``, symbolic links followed, each file and folder once.

    ``Path.rglob`` (Python < 3.13) does not enter symbolic links to folders, so a time point
    linked into the study folder would be dropped without a word; here links to files and to
    folders are followed alike. A folder or file reached a second time (a link to something
    already read, a hard link, or a link cycle; compared by device and inode) is read once and
    the second path reported; hidden entries
    (name starting with ``.``), broken links and special files (FIFOs, sockets) are reported,
    not read. A folder that cannot be listed or a file that cannot be read (permissions) is an
    error: it may hold a time point, which would otherwise vanish from the study. Paths are
    returned as reached under ``folder`` (through the link's name), not resolved.

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    files : list of Path
        Sorted by path.
    skipped : list of dict
        ``{"file": path, "reason": why}`` for every entry not returned.

    Raises
    ------
    UnreadableFileError
        ``folder`` is not a folder; a folder below it cannot be listed or a file in it cannot
        be read (the message names it; fix its permissions or remove it).

    """
    root = Path(folder)
    if not root.is_dir():
        raise UnreadableFileError("study folder does not exist", file=root)
    files: list[Path] = []
    skipped: list[dict[str, str]] = []
    seen_dirs: dict[tuple[int, int], Path] = {_inode(root): root}
    seen_files: dict[tuple[int, int], Path] = {}

    def unreadable(exc: OSError) -> None:
        raise UnreadableFileError(f"folder cannot be listed ({type(exc).__name__}: "
                                  f"{exc.strerror}); fix its permissions or remove it from the "
                                  "study folder", file=exc.filename) from exc

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            p = here / d
            real = _inode(p)
            if d.startswith("."):
                skipped.append(_skip(p, "hidden folder (name starts with '.'): not searched"))
            elif real in seen_dirs:
                skipped.append(_skip(p, f"same folder as {seen_dirs[real]} (symbolic link): "
                                        "read once"))
            else:
                seen_dirs[real] = p
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            p = here / name
            if name.startswith("."):
                skipped.append(_skip(p, "hidden file (name starts with '.')"))
            elif not p.exists():
                skipped.append(_skip(p, "broken symbolic link"))
            elif not p.is_file():
                skipped.append(_skip(p, "not a regular file (FIFO, socket or device)"))
            elif not os.access(p, os.R_OK):
                raise UnreadableFileError("file cannot be read (permission denied); fix its "
                                          "permissions or remove it from the study folder",
                                          file=p)
            elif (real := _inode(p)) in seen_files:
                skipped.append(_skip(p, f"same file as {seen_files[real]} (symbolic or hard "
                                        "link): read once"))
            else:
                seen_files[real] = p
                files.append(p)
    return sorted(files), skipped


def _inode(p: Path) -> tuple[int, int]:
    """Identity of the file or folder ``p`` leads to (links followed): (device, inode)."""
    st = os.stat(p)
    return st.st_dev, st.st_ino
