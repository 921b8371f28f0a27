"""``write_report``: the dosimetry report as HTML (self-contained) and PDF."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from theradose.io._outputs import atomic_path, prepare_output
from theradose.report._content import build_sections
from theradose.report._figures import dvh_figure, png_bytes, slices_figure, tac_figures, voi_colours
from theradose.report._html import render_html
from theradose.report._images import ReportImages, orient
from theradose.report._pdf import render_pdf
from theradose.report._results import load_results

__all__ = ["write_report"]

log = logging.getLogger("theradose")

HTML_NAME = "report.html"
PDF_NAME = "report.pdf"


def write_report(results: Mapping[str, Any] | str | Path, out_dir: str | Path, *,
                 images: ReportImages, overwrite: bool = False,
                 generated: datetime | None = None,
                 title: str | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.pdf`` for one dosimetry study.

    Content: patient/study summary (nuclide, injected activity, time points, software, date);
    absorbed dose per VOI for every engine with uncertainties, BED and D98/D50/D2; comparison
    with the ground truth when ``results["truth"]`` exists (virtual patients); fused CT/SPECT
    and CT/dose slices (axial and coronal) through the VOI of highest mean dose with isodose
    lines and VOI contours; the TAC of every VOI (data ± σ, fitted curve and its band);
    cumulative DVHs; fit, partial-volume-correction and registration tables; methods and data
    provenance; a blank "reviewed by / signature / date" block. Nothing is hard-coded: nuclide,
    radiopharmaceutical, VOIs and engines all come from ``results``.

    Parameters
    ----------
    results : dict or path
        The ``results.json`` content (``theradose.results/1``; keys used are listed in
        ``docs/report.md``) or its file. Not modified.
    out_dir : str or Path
        Folder for ``report.html`` and ``report.pdf`` (created if needed).
    images : ReportImages
        CT, dose, first-time-point SPECT and VOI label map, on one grid.
    overwrite : bool
        Replace existing reports; otherwise an existing one raises.
    generated : datetime, optional
        Date printed as "Report generated" (default: now).
    title : str, optional
        Title (default: ``"<nuclide> dosimetry report"``).

    Returns
    -------
    (Path, Path)
        Paths of the HTML and the PDF.

    Raises
    ------
    InputError
        If ``results`` lacks ``nuclide``, ``injected_activity_mbq`` or ``vois``, or a key has
        the wrong type or length (the message names the key path, and the file when a path
        was given).
    OutputExistsError
        If a report exists in ``out_dir`` and ``overwrite`` is False (nothing is written).

    Examples
    --------
    >>> imgs = ReportImages(ct=ct, dose=dose, spect=spect, labels=labels)  # doctest: +SKIP
    >>> html, pdf = write_report(results, "out", images=imgs)  # doctest: +SKIP

    """
    if not isinstance(images, ReportImages):
        from theradose.errors import InputError

        raise InputError(f"expected ReportImages, got {type(images).__name__}", field="images")
    data = load_results(results)
    out = Path(out_dir)
    html_path = prepare_output(out / HTML_NAME, overwrite=overwrite)
    pdf_path = prepare_output(out / PDF_NAME, overwrite=overwrite)
    generated = generated or datetime.now()
    title = title or f"{data.nuclide} dosimetry report"

    names = [v.name for v in data.vois]
    names += [n for _, n in sorted(images.labels.names.items()) if n not in names]
    colours = voi_colours(names)
    o = orient(images)
    sfig, scap = slices_figure(o, {n: colours[n] for n in o.names.values()})
    tfigs = tac_figures(data.vois, colours)
    dfig = dvh_figure(data.vois, colours)
    tcap = ("Points: measured VOI activity ± σ; line: fitted curve; band: its ± σ "
            "uncertainty band.")
    dcap = "Cumulative DVH: fraction of each VOI's volume receiving at least the dose."
    figs = {"slices": [(sfig, scap)], "tacs": [(f, tcap) for f in tfigs],
            "dvh": [] if dfig is None else [(dfig, dcap)]}
    sections = build_sections(data, generated)

    pngs = {k: [(png_bytes(f), c) for f, c in v] for k, v in figs.items()}
    with atomic_path(html_path, overwrite=overwrite) as tmp:
        tmp.write_text(render_html(title, sections, pngs), encoding="utf-8")
    with atomic_path(pdf_path, overwrite=overwrite) as tmp:
        render_pdf(tmp, title, sections, figs, created=generated)
    log.info("report written: %s, %s", html_path, pdf_path)
    return html_path, pdf_path
