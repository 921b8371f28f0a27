"""Planar polygons <-> voxel masks, vectorised with numpy (used by the RTSTRUCT reader/writer).

Coordinates here are continuous *index* coordinates of one slice: ``x`` along the column index
``i`` and ``y`` along the row index ``j``; voxel ``(j, i)`` has its centre at ``(i, j)`` and spans
``[i - 0.5, i + 0.5] × [j - 0.5, j + 0.5]``.

* :func:`rasterize_even_odd`: a voxel is inside when its centre is inside by the even-odd rule
  over *all* polygons given for its slice, so holes (a polygon inside another) and several
  components per slice work. Scanline algorithm: each edge toggles the parity of every voxel
  centre to its right on each row it crosses (half-open rule ``y0 <= j < y1``, so a vertex on a
  row is counted once), then a cumulative sum along x gives the parity.
* :func:`trace_voxel_boundaries`: closed polygons that follow the voxel edges of a mask, one per
  boundary loop (outer outline or hole of each 4-connected component, per slice). Re-rasterising
  them with :func:`rasterize_even_odd` gives the mask back exactly, because every voxel centre's
  ray crosses the boundary edges between it and infinity an odd number of times if and only if the
  voxel is inside.

References
----------
Even-odd (crossing-number) point-in-polygon test: E. Haines, "Point in Polygon Strategies",
Graphics Gems IV (1994) 24-46, doi:10.1016/B978-0-12-336156-1.50013-6.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rasterize_even_odd", "trace_voxel_boundaries"]

# Unit steps of the four edge directions in (x, y) = (column, row) index space.
_DIRS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)


def rasterize_even_odd(xy: np.ndarray, polygon: np.ndarray, polygon_slice: np.ndarray,
                       shape: tuple[int, int, int]) -> np.ndarray:
    """Voxels whose centres lie inside a set of closed polygons (even-odd rule per slice).

    Parameters
    ----------
    xy : (N, 2) float ndarray
        Polygon vertices in index coordinates ``(x = column, y = row)``, polygons one after the
        other (each closed implicitly: the last vertex connects to the first).
    polygon : (N,) int ndarray
        Polygon number of each vertex, non-decreasing (vertices of a polygon are contiguous).
    polygon_slice : (P,) int ndarray
        Slice (z index) of each polygon; polygons outside ``0 <= k < Z`` are ignored.
    shape : (Z, Y, X)
        Output shape.

    Returns
    -------
    (Z, Y, X) bool ndarray
    """
    nz, ny, nx = (int(s) for s in shape)
    out = np.zeros((nz, ny, nx), dtype=bool)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    polygon = np.asarray(polygon, dtype=np.int64)
    if xy.shape[0] == 0:
        return out
    # next vertex in the same polygon (wrapping at the polygon's end)
    starts = np.flatnonzero(np.r_[True, polygon[1:] != polygon[:-1]])
    ends = np.r_[starts[1:], polygon.size]
    nxt = np.arange(polygon.size) + 1
    nxt[ends - 1] = starts
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = xy[nxt, 0], xy[nxt, 1]
    k = np.asarray(polygon_slice, dtype=np.int64)[polygon]
    ok = (k >= 0) & (k < nz) & (y0 != y1)
    x0, y0, x1, y1, k = x0[ok], y0[ok], x1[ok], y1[ok], k[ok]
    # rows j (integers) with min(y0, y1) <= j < max(y0, y1), clipped to the grid
    j_lo = np.maximum(np.ceil(np.minimum(y0, y1)), 0).astype(np.int64)
    j_hi = np.minimum(np.ceil(np.maximum(y0, y1)) - 1, ny - 1).astype(np.int64)
    counts = np.maximum(j_hi - j_lo + 1, 0)
    if counts.sum() == 0:
        return out
    edge = np.repeat(np.arange(counts.size), counts)
    j = j_lo[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts))
    t = (j - y0[edge]) / (y1[edge] - y0[edge])
    xc = x0[edge] + t * (x1[edge] - x0[edge])
    # centres i > xc are right of the crossing: toggle from floor(xc) + 1 on
    start = np.clip(np.floor(xc).astype(np.int64) + 1, 0, nx)
    slices, s_idx = np.unique(k[edge], return_inverse=True)
    toggles = np.zeros((slices.size, ny, nx + 1), dtype=np.uint8)
    np.add.at(toggles, (s_idx, j, start), 1)  # uint8 wraps mod 256: parity is kept
    parity = np.cumsum(toggles, axis=2, dtype=np.uint8)[:, :, :nx] & 1
    out[slices] = parity.astype(bool)
    return out


def trace_voxel_boundaries(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed polygons along the voxel edges of a 3-D mask, slice by slice.

    Each boundary edge between an inside and an outside voxel (or the grid border) is directed
    with the inside on its left, in ``(x = column, y = row)`` index space; edges are chained into
    loops, turning towards the inside at a vertex shared by two diagonal voxels (so components
    that touch only at a corner get separate loops), and collinear vertices are dropped.

    Parameters
    ----------
    mask : (Z, Y, X) bool ndarray

    Returns
    -------
    xy : (N, 2) float ndarray
        Corner vertices in index coordinates (half-integers: voxel corners), loop after loop.
    polygon : (N,) int ndarray
        Loop number of each vertex (0, 1, ...; contiguous and non-decreasing).
    polygon_slice : (P,) int ndarray
        Slice index of each loop.
    """
    m = np.asarray(mask, dtype=bool)
    empty = (np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if m.ndim != 3 or not m.any():
        return empty
    # work in the bounding box of the mask (coordinates shifted back at the end)
    lo = [int(np.flatnonzero(m.any(axis=tuple(a for a in range(3) if a != ax)))[0])
          for ax in range(3)]
    hi = [int(np.flatnonzero(m.any(axis=tuple(a for a in range(3) if a != ax)))[-1]) + 1
          for ax in range(3)]
    m = m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    ny, nx = m.shape[1:]
    p = np.pad(m, ((0, 0), (1, 1), (1, 1)))
    # horizontal edges on vertex row r (0..Y) between vertices (c, r) and (c+1, r)
    above, below = p[:, :-1, 1:-1], p[:, 1:, 1:-1]  # (Z, Y+1, X)
    # vertical edges on vertex column c (0..X) between vertices (c, r) and (c, r+1)
    left, right = p[:, 1:-1, :-1], p[:, 1:-1, 1:]  # (Z, Y, X+1)
    parts = []
    for cond, dcode, shift in (
        (below & ~above, 0, (0, 0)),  # +x from (c, r)
        (above & ~below, 2, (1, 0)),  # -x from (c+1, r)
        (left & ~right, 1, (0, 0)),  # +y from (c, r)
        (right & ~left, 3, (0, 1)),  # -y from (c, r+1)
    ):
        z, r, c = np.nonzero(cond)
        parts.append(np.stack([z, c + shift[0], r + shift[1],
                               np.full(z.size, dcode)], axis=1))
    e = np.concatenate(parts).astype(np.int64)  # (E, 4): slice, start x, start y, direction
    n_e = e.shape[0]
    vx, vy = nx + 1, ny + 1

    def key(z, x, y, d):
        return ((z * vy + y) * vx + x) * 4 + d

    keys = key(e[:, 0], e[:, 1], e[:, 2], e[:, 3])
    order = np.argsort(keys)
    sorted_keys = keys[order]
    end = e[:, 1:3] + _DIRS[e[:, 3]]
    succ = np.full(n_e, -1, dtype=np.int64)
    for turn in (1, 0, 3):  # left (towards the inside), straight, right
        d = (e[:, 3] + turn) % 4
        want = key(e[:, 0], end[:, 0], end[:, 1], d)
        pos = np.clip(np.searchsorted(sorted_keys, want), 0, n_e - 1)
        hit = (sorted_keys[pos] == want) & (succ < 0)
        succ[hit] = order[pos[hit]]
    if np.any(succ < 0):  # cannot happen for a boundary of a binary image
        raise RuntimeError("internal error: open boundary while tracing a mask")

    # loop representative (smallest edge index in the loop) by pointer doubling
    rep = np.arange(n_e)
    jump = succ.copy()
    for _ in range(int(np.ceil(np.log2(n_e))) + 1):
        rep = np.minimum(rep, rep[jump])
        jump = jump[jump]
    # rank of each edge counted back from the loop's last edge (list ranking by doubling)
    is_last = rep[succ] == succ  # the successor starts the loop again
    nxt = np.where(is_last, np.arange(n_e), succ)
    rank = (~is_last).astype(np.int64)
    for _ in range(int(np.ceil(np.log2(n_e))) + 1):
        rank = rank + rank[nxt]
        nxt = nxt[nxt]
    seq = np.lexsort((-rank, rep))  # loops in order of rep, edges from rep onwards
    pred = np.empty(n_e, dtype=np.int64)
    pred[succ] = np.arange(n_e)
    corner = e[seq, 3] != e[pred[seq], 3]
    seq = seq[corner]
    _, loop = np.unique(rep[seq], return_inverse=True)
    xy = e[seq, 1:3].astype(float) - 0.5 + np.array([lo[2], lo[1]], dtype=float)
    first = np.flatnonzero(np.r_[True, loop[1:] != loop[:-1]])
    return xy, loop.astype(np.int64), e[seq[first], 0] + lo[0]
