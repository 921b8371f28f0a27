"""Resumable pipeline: intermediate results cached under ``OUT/.cache`` by a hash of their inputs.

A stage's key is the SHA-256 of the theradose version and source code (every ``.py`` file of
the installed package, so an upgraded or edited theradose never reuses a stale result), the
fingerprint of the study files
(relative path, size and modification time of every file) or the key of the stage it builds
on, and the configuration sections that change its result. A re-run with, e.g., another dose
engine finds the registration, TACs and TIA maps under the same keys and skips them.
The cache holds pickles written by this program into the output folder; it is not meant to be
shared or read from untrusted places.

Entries are written atomically (:func:`theradose.io.atomic_path`: a temporary file in the same
folder, flushed and fsynced, then ``os.replace``): a run killed while writing one leaves the
previous entry or none, never a truncated pickle under an entry's name, only a hidden
temporary file, which :meth:`StageCache.remove_temporaries` deletes at the next run's start
(the pipeline holds the output folder's lock then, so no other run is writing it).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
from pathlib import Path
from typing import Any

from theradose import __version__
from theradose.io import atomic_path

__all__ = ["StageCache", "code_fingerprint", "fingerprint", "stage_key"]

log = logging.getLogger("theradose")


def fingerprint(folder: Path) -> str:
    """Hash of the names, sizes and modification times of every file under ``folder``.

    Files are listed as the study loader lists them (:func:`theradose.io.study_files`:
    symbolic links followed), so a time point linked into the study is part of the key.
    """
    from theradose.io import study_files

    h = hashlib.sha256()
    for p in study_files(folder)[0]:  # the files the loader reads (links followed)
        st = p.stat()
        h.update(f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 of the theradose package's source: relative path and content of every .py."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(f"{p.relative_to(root)}\0".encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def stage_key(*parts: str) -> str:
    """SHA-256 (first 20 hex digits) of the theradose version and code, and ``parts``."""
    h = hashlib.sha256(__version__.encode())
    h.update(b"\0" + code_fingerprint().encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()[:20]


class StageCache:
    """Pickled stage results in ``folder`` (``<stage>_<key>.pkl``); ``hits`` lists reuses."""

    def __init__(self, folder: Path, *, enabled: bool = True) -> None:
        self.folder = Path(folder)
        self.enabled = enabled
        self.hits: list[str] = []
        self.misses: list[str] = []

    def _path(self, stage: str, key: str) -> Path:
        return self.folder / f"{stage}_{key}.pkl"

    def get(self, stage: str, key: str) -> Any | None:
        """The cached result, or None (unreadable entries are ignored and recomputed)."""
        p = self._path(stage, key)
        if not (self.enabled and p.is_file()):
            self.misses.append(stage)
            return None
        try:
            with p.open("rb") as f:
                value = pickle.load(f)
        except Exception as exc:
            log.warning("cache entry %s unreadable (%s); recomputing", p, exc)
            self.misses.append(stage)
            return None
        log.info("%s: reused from cache (%s)", stage, p.name)
        self.hits.append(stage)
        return value

    def remove_temporaries(self) -> list[str]:
        """Delete hidden temporary files left by a writer that was killed; return their names.

        Only call it while no other process writes this cache (the pipeline holds the output
        folder's lock).
        """
        if not self.folder.is_dir():
            return []
        gone = []
        for p in self.folder.iterdir():
            if p.name.startswith(".") and p.is_file():
                p.unlink(missing_ok=True)
                gone.append(p.name)
        if gone:
            log.info("removed %d temporary file(s) of an interrupted run from %s", len(gone),
                     self.folder)
        return gone

    def put(self, stage: str, key: str, value: Any) -> None:
        """Store ``value``; older entries of the same stage are removed."""
        if not self.enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob(f"{stage}_*.pkl"):
            old.unlink(missing_ok=True)
        with atomic_path(self._path(stage, key), overwrite=True) as tmp, tmp.open("wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
