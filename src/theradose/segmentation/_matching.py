"""Follow lesions across time points: optimal centroid matching (Hungarian algorithm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from theradose.errors import InputError
from theradose.volume import LabelMap

__all__ = ["match_lesions"]


def _centroids(lm: LabelMap) -> tuple[list[str], np.ndarray, list[float]]:
    """Names, LPS centroids (n, 3) in mm and volumes (mL) of the non-empty VOIs of a label map."""
    items = sorted(lm.names.items())
    values = [v for v, _ in items]
    counts = ndimage.sum(np.ones(lm.shape), lm.array, values) if values else []
    keep = [i for i, c in enumerate(counts) if c > 0]
    names = [items[i][1] for i in keep]
    if not keep:
        return names, np.zeros((0, 3)), []
    cents = ndimage.center_of_mass(np.ones(lm.shape), lm.array, [values[i] for i in keep])
    xyz = lm.geometry.index_to_physical(np.asarray(cents, dtype=float)[:, ::-1])
    vols = [float(counts[i]) * lm.geometry.voxel_volume_ml for i in keep]
    return names, np.atleast_2d(xyz), vols


def match_lesions(labels_per_time_point: Sequence[LabelMap], max_distance_mm: float = 20.0
                  ) -> list[dict[str, Any]]:
    """Match the VOIs (lesions) of several time points into tracks by centroid distance.

    Time points are matched in order: the VOIs of time point ``k`` are assigned to the tracks'
    most recent centroids by the Hungarian algorithm (minimum total LPS distance), pairs farther
    than ``max_distance_mm`` are not matched, and unmatched VOIs start new tracks. The label
    maps must be in one frame (registered); each may have its own grid.

    Parameters
    ----------
    labels_per_time_point : sequence of LabelMap
        One label map per time point (e.g. from :func:`segment_lesions`).
    max_distance_mm : float
        Largest centroid displacement accepted as the same lesion, mm (> 0).

    Returns
    -------
    list of dict
        One track per physical lesion, ordered by first appearance (then by name): ``"name"``
        (``lesion_1``, ... in that order), ``"members"`` (the VOI name at each time point, or
        None where absent), ``"centroids_mm"`` (LPS, or None), ``"volumes_ml"`` and
        ``"distance_mm"`` (to the track's previous centroid; None at the first appearance).

    Raises
    ------
    InputError
        Not a sequence of LabelMaps, or ``max_distance_mm`` ≤ 0.

    References
    ----------
    Kuhn H. W., "The Hungarian method for the assignment problem", Naval Res. Logist. Q. 2
    (1955) 83-97, doi:10.1002/nav.3800020109.

    Examples
    --------
    >>> tracks = match_lesions([seg_24h, seg_96h])  # doctest: +SKIP
    >>> tracks[0]["members"]  # doctest: +SKIP
    ['lesion_1', 'lesion_2']
    """
    if isinstance(labels_per_time_point, LabelMap) or \
            not isinstance(labels_per_time_point, Sequence):
        raise InputError("must be a sequence of LabelMaps (one per time point), got "
                         f"{type(labels_per_time_point).__name__}", field="labels_per_time_point")
    for i, lm in enumerate(labels_per_time_point):
        if not isinstance(lm, LabelMap):
            raise InputError(f"item {i} must be a LabelMap, got {type(lm).__name__}",
                             field="labels_per_time_point")
    try:
        dmax = float(max_distance_mm)
    except (TypeError, ValueError):
        raise InputError(f"must be a number of mm, got {max_distance_mm!r}",
                         field="max_distance_mm") from None
    if not dmax > 0:
        raise InputError(f"must be > 0 mm, got {max_distance_mm!r}", field="max_distance_mm")
    n_tp = len(labels_per_time_point)
    tracks: list[dict[str, Any]] = []
    for k, lm in enumerate(labels_per_time_point):
        names, xyz, vols = _centroids(lm)
        matched: dict[int, int] = {}
        if tracks and names:
            last = np.array([t["_last"] for t in tracks])
            dist = np.linalg.norm(last[:, None, :] - xyz[None, :, :], axis=-1)
            cost = np.where(dist <= dmax, dist, 1e6 * (1.0 + dist))
            rows, cols = linear_sum_assignment(cost)
            matched = {int(c): int(r) for r, c in zip(rows, cols, strict=True)
                       if dist[r, c] <= dmax}
        for j, name in enumerate(names):
            if j in matched:
                t = tracks[matched[j]]
                t["distance_mm"][k] = float(np.linalg.norm(xyz[j] - t["_last"]))
            else:
                t = {"members": [None] * n_tp, "centroids_mm": [None] * n_tp,
                     "volumes_ml": [None] * n_tp, "distance_mm": [None] * n_tp}
                tracks.append(t)
            t["members"][k] = name
            t["centroids_mm"][k] = [float(x) for x in xyz[j]]
            t["volumes_ml"][k] = vols[j]
            t["_last"] = xyz[j]
    out = []
    for i, t in enumerate(tracks, start=1):
        t.pop("_last")
        out.append({"name": f"lesion_{i}", **t})
    return out
