"""Adapter to TotalSegmentator (optional extra: organs from the CT with a pretrained nnU-Net).

TotalSegmentator is never part of the default install: it downloads its network weights at
the first run and pulls a CUDA build of torch. Install it yourself (``pip install
TotalSegmentator``) where that is acceptable; :func:`totalsegmentator` then runs its Python API
(``totalsegmentator.python_api.totalsegmentator``) on the CT written as NIfTI to a temporary
folder, reads the multi-label result with its ``class_map`` name table and maps names to
theradose's (which follow TotalSegmentator's; lung lobes are merged into ``lung_left`` /
``lung_right``).

References
----------
Wasserthal J. et al., "TotalSegmentator: robust segmentation of 104 anatomic structures in CT
images", Radiol. Artif. Intell. 5 (2023) e230024, doi:10.1148/ryai.230024.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import tempfile
from pathlib import Path

import numpy as np

from theradose.errors import InputError, OptionalDependencyError
from theradose.io import read_labelmap, write_nifti
from theradose.volume import LabelMap, Volume, resample

__all__ = ["TOTALSEG_RENAME", "totalsegmentator"]

log = logging.getLogger("theradose")

#: TotalSegmentator name → theradose name where they differ (several may map to one).
TOTALSEG_RENAME: dict[str, str] = {
    "lung_upper_lobe_left": "lung_left",
    "lung_lower_lobe_left": "lung_left",
    "lung_upper_lobe_right": "lung_right",
    "lung_middle_lobe_right": "lung_right",
    "lung_lower_lobe_right": "lung_right",
}

_INSTALL_HINT = ("TotalSegmentator is an optional extra, not installed: pip install "
                 "TotalSegmentator (it downloads its weights at the first run and may replace "
                 "the CPU torch build), or import masks with theradose.segmentation.import_masks")


def _load_api():
    try:
        api = importlib.import_module("totalsegmentator.python_api")
        maps = importlib.import_module("totalsegmentator.map_to_binary")
    except ImportError as exc:
        raise OptionalDependencyError(f"{_INSTALL_HINT} ({exc})", field="totalsegmentator"
                                      ) from exc
    return api.totalsegmentator, maps.class_map


def _rename(lm: LabelMap) -> LabelMap:
    """Apply :data:`TOTALSEG_RENAME`, merging labels that map to one theradose name."""
    new_names: dict[str, int] = {}
    lut = np.zeros(int(lm.array.max()) + 1, dtype=np.int64)
    for value, name in sorted(lm.names.items()):
        target = TOTALSEG_RENAME.get(name, name)
        new_names.setdefault(target, len(new_names) + 1)
        lut[value] = new_names[target]
    dtype = np.uint8 if len(new_names) < 256 else np.uint16
    arr = lut[lm.array].astype(dtype)
    return lm.replace(array=arr, names={v: n for n, v in new_names.items()},
                      note="TotalSegmentator names mapped to theradose names")


def totalsegmentator(ct: Volume, *, fast: bool = True, device: str = "cpu",
                     task: str = "total", roi_subset: list[str] | None = None) -> LabelMap:
    """Segment organs on a CT with TotalSegmentator (optional dependency).

    Parameters
    ----------
    ct : Volume
        CT in HU ``(Z, Y, X)``.
    fast : bool
        TotalSegmentator's 3 mm model (default; minutes on a CPU instead of tens of minutes).
    device : str
        ``"cpu"``, ``"gpu"`` or ``"gpu:N"`` (passed on where the installed version accepts it).
    task : str
        TotalSegmentator task (default ``"total"``).
    roi_subset : list of str, optional
        Only these TotalSegmentator classes (faster).

    Returns
    -------
    LabelMap
        On the CT grid; names mapped by :data:`TOTALSEG_RENAME`; ``meta["source"]`` records
        the tool and options.

    Raises
    ------
    OptionalDependencyError
        TotalSegmentator is not installed (the message says how to install it).
    InputError
        ``ct`` is not a CT Volume in HU.

    References
    ----------
    Wasserthal et al., Radiol. Artif. Intell. 5 (2023) e230024, doi:10.1148/ryai.230024.
    """
    if not isinstance(ct, Volume) or isinstance(ct, LabelMap):
        raise InputError(f"must be a CT Volume, got {type(ct).__name__}", field="ct")
    if ct.unit != "HU":
        raise InputError(f"must be in HU, got unit {ct.unit!r}", field="ct.unit")
    run, class_map = _load_api()
    names = class_map.get(task) if isinstance(class_map, dict) else None
    if not names:
        raise InputError(f"unknown TotalSegmentator task {task!r}; accepted: "
                         f"{sorted(class_map) if isinstance(class_map, dict) else []}",
                         field="task")
    kwargs = {"ml": True, "fast": bool(fast), "task": task, "quiet": True}
    if roi_subset:
        kwargs["roi_subset"] = list(roi_subset)
    params = inspect.signature(run).parameters
    any_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "device" in params or any_kw:
        kwargs["device"] = device
    if not any_kw:  # older releases lack some options
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    with tempfile.TemporaryDirectory(prefix="theradose_totalseg_") as tmp:
        src = Path(tmp) / "ct.nii.gz"
        out = Path(tmp) / "seg.nii.gz"
        write_nifti(ct.replace(meta={}), src)
        log.info("running TotalSegmentator (%s)", kwargs)
        run(str(src), str(out), **kwargs)
        if not out.is_file():
            raise OptionalDependencyError("TotalSegmentator ran but wrote no label map",
                                          file=out, field="totalsegmentator")
        lm = read_labelmap(out, names={int(k): v for k, v in names.items()}, sidecar=False)
    lm = resample(lm, ct.geometry, method="nearest")
    lm = _rename(lm)
    return lm.replace(modality="SEG", acquisition_time=ct.acquisition_time,
                      meta={"source": {"tool": "TotalSegmentator", **{
                          k: v for k, v in kwargs.items() if k != "quiet"}}})
