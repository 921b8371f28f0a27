"""PDF through matplotlib's PdfPages: text pages laid out with ``Figure.text``, figure pages as is.

Fonts are embedded as TrueType (``pdf.fonttype = 42``) so that the text can be searched and
extracted (matplotlib's default Type 3 fonts cannot be).
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from theradose.report._content import SIGNATURE_LINES, Section

__all__ = ["render_pdf"]

A4_IN = (8.27, 11.69)
MARGIN_IN = 0.6
PT_PER_IN = 72.0


class _TextPages:
    """Flows titles, key–value lists and tables onto A4 pages (top to bottom)."""

    def __init__(self, pdf: PdfPages) -> None:
        self.pdf = pdf
        self.fig: Figure | None = None
        self.y_pt = 0.0
        self.width_pt = (A4_IN[0] - 2 * MARGIN_IN) * PT_PER_IN

    # -- page handling
    def _new_page(self) -> None:
        self.flush()
        self.fig = Figure(figsize=A4_IN)
        FigureCanvasAgg(self.fig)
        self.y_pt = MARGIN_IN * PT_PER_IN

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None

    def _need(self, h_pt: float) -> None:
        if self.fig is None or self.y_pt + h_pt > (A4_IN[1] - MARGIN_IN) * PT_PER_IN:
            self._new_page()

    def _text(self, x_pt: float, s: str, size: float, **kw) -> None:
        assert self.fig is not None
        self.fig.text((MARGIN_IN * PT_PER_IN + x_pt) / (A4_IN[0] * PT_PER_IN),
                      1.0 - self.y_pt / (A4_IN[1] * PT_PER_IN), s, fontsize=size, va="top",
                      ha="left", **kw)

    # -- content
    def title(self, s: str, size: float = 16.0) -> None:
        self._need(2.2 * size)
        self._text(0, s, size, weight="bold")
        self.y_pt += 1.6 * size

    def heading(self, s: str) -> None:
        self._need(60)  # keep a heading with what follows
        self.y_pt += 6
        self._text(0, s, 11.5, weight="bold", color="#334455")
        self.y_pt += 17

    def paragraph(self, s: str, size: float = 8.0) -> None:
        for line in textwrap.wrap(s, width=int(self.width_pt / (0.5 * size))) or [""]:
            self._need(1.4 * size)
            self._text(0, line, size)
            self.y_pt += 1.4 * size

    def pairs(self, pairs: list[tuple[str, str]], size: float = 8.0) -> None:
        key_w = min(max((len(k) for k, _ in pairs), default=10) * 0.66 * size + 10,
                    0.4 * self.width_pt)
        val_chars = int((self.width_pt - key_w) / (0.5 * size))
        for k, v in pairs:
            lines = textwrap.wrap(v, width=val_chars) or [""]
            self._need(1.4 * size * len(lines))
            self._text(0, k, size, weight="bold")
            for line in lines:
                self._text(key_w, line, size)
                self.y_pt += 1.4 * size

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        size = 8.0
        ncol = len(header)
        widest = [max(len(str(r[i])) for r in [header, *rows]) for i in range(ncol)]
        while size > 5.0 and (sum(widest) * 0.64 * size + 10 * ncol) > self.width_pt:
            size -= 0.5
        cw = 0.64 * size
        max_chars = max(int(self.width_pt / cw / ncol), 8)
        widths = [min(w, max(max_chars, int(self.width_pt / cw - sum(widest) + w)))
                  for w in widest]
        xs = [0.0]
        for w in widths[:-1]:
            xs.append(xs[-1] + w * cw + 10)

        def draw(row: list[str], bold: bool) -> None:
            cells = [textwrap.wrap(str(c), width=max(w, 4)) or [""] for c, w in zip(row, widths,
                                                                                 strict=True)]
            n = max(len(c) for c in cells)
            if self.fig is None or self.y_pt + 1.35 * size * n > \
                    (A4_IN[1] - MARGIN_IN) * PT_PER_IN:
                self._new_page()
                if not bold:
                    draw(header, True)
            for x, c in zip(xs, cells, strict=True):
                for i, line in enumerate(c):
                    self.y_pt += 1.35 * size * i
                    self._text(x, line, size, weight="bold" if bold else "normal")
                    self.y_pt -= 1.35 * size * i
            self.y_pt += 1.35 * size * n + 1.5

        self._need(1.35 * size * 3)
        draw(header, True)
        for r in rows:
            draw(r, False)

    def section(self, s: Section | None) -> None:
        if s is None:
            return
        self.heading(s.title)
        if s.pairs:
            self.pairs(s.pairs)
        if s.header:
            self.table(s.header, s.rows)
        if s.note:
            self.paragraph(s.note, size=7.0)


def _figure_page(pdf: PdfPages, fig: Figure, heading: str, caption: str) -> None:
    fig.suptitle(heading, fontsize=11, weight="bold", x=0.02, ha="left")
    if caption:
        fig.text(0.02, 0.005, "\n".join(textwrap.wrap(caption, 150)), fontsize=6, va="bottom")
    pdf.savefig(fig)


def render_pdf(path: Path, title: str, sections: dict[str, Section | None],
               figures: dict[str, list[tuple[Figure, str]]], *,
               created: datetime | None = None) -> None:
    """Write the PDF report to ``path``.

    Layout: text page(s) with the summary, warnings, time points, dose table and truth
    comparison; one page for the slices; one per TAC figure (≤ 9 VOIs each); one for the
    DVH; text page(s) with fits, partial-volume correction, registration,
    methods/provenance and the signature block. ``created`` is the PDF's CreationDate (the
    report's "generated" time, so the same content gives the same bytes; default: now).
    """
    meta = {"Title": title, "Creator": "theradose",
            **({"CreationDate": created} if created is not None else {})}
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(path, metadata=meta) as pdf:
        tp = _TextPages(pdf)
        tp.title(title)
        for key in ("summary", "warnings", "time_points", "dose", "truth"):
            tp.section(sections.get(key))
        tp.flush()
        headings = {"slices": "Images: CT, SPECT and dose", "tacs": "Time-activity curves",
                    "dvh": "Dose-volume histograms"}
        for key, heading in headings.items():
            for fig, cap in figures.get(key, []):
                _figure_page(pdf, fig, heading, cap)
        for key in ("fits", "pvc", "registration", "methods"):
            tp.section(sections[key])
        tp.heading("Review")
        for s in SIGNATURE_LINES:
            tp._need(30)
            tp.y_pt += 14
            tp._text(0, f"{s}:", 9)
            tp._text(150, "_" * 48, 9)
            tp.y_pt += 10
        tp.flush()
