"""Matplotlib figures of the report (object-oriented API, Agg canvas: no global pyplot state)."""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from theradose.report._images import OrientedImages, hottest_voi
from theradose.report._results import VoiData

__all__ = ["dvh_figure", "png_bytes", "slices_figure", "tac_figures", "voi_colours"]

#: Isodose levels as fractions of the maximum dose shown.
ISODOSE_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9)
#: Soft-tissue CT window (HU).
CT_WINDOW_HU = (-160.0, 240.0)
TACS_PER_FIGURE = 9


def _new_figure(w_in: float, h_in: float) -> Figure:
    fig = Figure(figsize=(w_in, h_in))
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure, *, dpi: int = 110) -> bytes:
    """PNG encoding of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def voi_colours(names: list[str]) -> dict[str, str]:
    """A distinct colour per VOI name (tab10, then tab20), in the given order."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if len(names) <= 10 else colormaps["tab20"]
    return {n: to_hex(cmap(i % cmap.N)) for i, n in enumerate(names)}


def _ct_window(o: OrientedImages) -> tuple[float, float]:
    if o.ct_unit == "HU":
        return CT_WINDOW_HU
    lo, hi = np.percentile(o.ct, [1, 99])
    return float(lo), float(max(hi, lo + 1e-6))


def _panel(ax, o: OrientedImages, plane: str, idx: tuple[int, int, int], overlay: str,
           colours: dict[str, str]):
    """Draw one slice: CT, overlay (``"spect"`` or ``"dose"``), VOI contours. Returns the image."""
    sx, sy, sz = o.spacing_mm
    z, y, _ = idx
    if plane == "axial":  # rows posterior-going (anterior on top), columns to patient left
        sl = np.s_[z, :, :]
        ny, nx = o.ct.shape[1:]
        extent = (-0.5 * sx, (nx - 0.5) * sx, (ny - 0.5) * sy, -0.5 * sy)
        origin = "upper"
    else:  # coronal: rows superior-going, drawn with superior on top
        sl = np.s_[:, y, :]
        nz, nx = o.ct.shape[0], o.ct.shape[2]
        extent = (-0.5 * sx, (nx - 0.5) * sx, -0.5 * sz, (nz - 0.5) * sz)
        origin = "lower"
    lo, hi = _ct_window(o)
    ax.imshow(o.ct[sl], cmap="gray", vmin=lo, vmax=hi, extent=extent, origin=origin,
              interpolation="nearest")
    img = None
    if overlay == "spect":
        vmax = float(o.spect.max())
        if vmax > 0:
            data = np.ma.masked_less(o.spect[sl], 0.05 * vmax)
            img = ax.imshow(data, cmap="hot", vmin=0, vmax=vmax, alpha=0.6, extent=extent,
                            origin=origin, interpolation="nearest")
    else:
        dmax = float(o.dose_gy.max())
        if dmax > 0:
            d = o.dose_gy[sl]
            img = ax.imshow(np.ma.masked_less(d, 0.02 * dmax), cmap="turbo", vmin=0, vmax=dmax,
                            alpha=0.5, extent=extent, origin=origin, interpolation="nearest")
            levels = [f * dmax for f in ISODOSE_FRACTIONS if d.min() < f * dmax < d.max()]
            if levels:
                cs = ax.contour(d, levels=levels, colors="white", linewidths=0.7,
                                extent=extent, origin=origin)
                ax.clabel(cs, fmt=lambda v: f"{v:.3g} Gy", fontsize=5)
    for value, name in sorted(o.names.items()):
        m = (o.labels[sl] == value).astype(float)
        if m.any() and not m.all():
            ax.contour(m, levels=[0.5], colors=[colours.get(name, "cyan")], linewidths=0.9,
                       extent=extent, origin=origin)
    ax.set_xticks([])
    ax.set_yticks([])
    return img


def slices_figure(o: OrientedImages, colours: dict[str, str]) -> tuple[Figure, str]:
    """2 × 2 panels (axial, coronal) × (CT + SPECT, CT + dose) through the hottest VOI.

    Returns the figure and its caption.
    """
    name, idx = hottest_voi(o)
    fig = _new_figure(7.2, 7.0)
    axes = fig.subplots(2, 2)
    for col, plane in enumerate(("axial", "coronal")):
        for row, overlay in enumerate(("spect", "dose")):
            ax = axes[row, col]
            img = _panel(ax, o, plane, idx, overlay, colours)
            what = "SPECT" if overlay == "spect" else "dose"
            ax.set_title(f"{plane} CT + {what}", fontsize=8)
            if img is not None:
                cb = fig.colorbar(img, ax=ax, fraction=0.046, pad=0.02)
                cb.set_label(o.spect_unit if overlay == "spect" else "Gy", fontsize=7)
                cb.ax.tick_params(labelsize=6)
    handles = [_line(colours[n]) for n in colours]
    if handles:
        fig.legend(handles, list(colours), loc="lower center", ncol=min(len(colours), 5),
                   fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.035))
    fig.subplots_adjust(left=0.03, right=0.93, top=0.9, bottom=0.1, wspace=0.25, hspace=0.15)
    where = f"through {name} (highest mean dose)" if name else "through the image centre"
    cap = (f"Slices {where}: axial z-index {idx[0]}, coronal y-index {idx[1]} (LPS, "
           f"radiological view: patient right on the left). Isodose lines at "
           f"{', '.join(f'{int(f * 100)}' for f in ISODOSE_FRACTIONS)} % of the maximum dose "
           f"{float(o.dose_gy.max()):.3g} Gy.")
    return fig, cap


def _line(colour: str):
    from matplotlib.lines import Line2D

    return Line2D([0], [0], color=colour, lw=1.5)


def tac_figures(vois: list[VoiData], colours: dict[str, str]) -> list[Figure]:
    """Time-activity curves: data ± σ, fitted curve and its uncertainty band, one panel per VOI."""
    with_tac = [v for v in vois if v.tac is not None]
    figs = []
    for start in range(0, len(with_tac), TACS_PER_FIGURE):
        chunk = with_tac[start:start + TACS_PER_FIGURE]
        ncol = min(3, len(chunk))
        nrow = math.ceil(len(chunk) / ncol)
        fig = _new_figure(7.2, 0.6 + 2.3 * nrow)
        axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
        for ax, v in zip(axes, chunk, strict=False):
            tac = v.tac or {}
            c = colours.get(v.name, "C0")
            curve = tac.get("fit_curve")
            if curve:
                if "lo" in curve and "hi" in curve:
                    ax.fill_between(curve["t_h"], curve["lo"], curve["hi"], color=c, alpha=0.25,
                                    lw=0, label="fit ± σ")
                ax.plot(curve["t_h"], curve["a_mbq"], color=c, lw=1.2, label="fit")
            ax.errorbar(tac["times_h"], tac["activity_mbq"], yerr=tac.get("activity_sd_mbq"),
                        fmt="o", ms=3.5, color="k", capsize=2, lw=0.8, label="measured")
            model = v.fit.get("model")
            ax.set_title(v.name + (f" ({model})" if model else ""), fontsize=8)
            ax.set_xlabel("time (h)", fontsize=7)
            ax.set_ylabel("activity (MBq)", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_ylim(bottom=0)
            ax.set_xlim(left=0)
        axes[0].legend(fontsize=6, frameon=False)
        for ax in axes[len(chunk):]:
            ax.set_visible(False)
        fig.tight_layout(rect=(0, 0.05, 1, 0.92))
        figs.append(fig)
    return figs


def dvh_figure(vois: list[VoiData], colours: dict[str, str]) -> Figure | None:
    """Cumulative DVHs of all VOIs with a curve; ``None`` when there is none."""
    with_dvh = [v for v in vois if v.dvh is not None and v.dvh.get("curve")]
    if not with_dvh:
        return None
    fig = _new_figure(7.2, 4.0)
    ax = fig.subplots()
    for v in with_dvh:
        cv = v.dvh["curve"]  # type: ignore[index]
        ax.step(cv["dose_gy"], 100.0 * np.asarray(cv["volume_fraction"]), where="post",
                color=colours.get(v.name, "C0"), lw=1.3, label=v.name)
    ax.set_xlabel("absorbed dose (Gy)", fontsize=8)
    ax.set_ylabel("volume receiving ≥ dose (%)", fontsize=8)
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 0.92))
    return fig
