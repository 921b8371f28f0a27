"""Dosimetry report: HTML (self-contained) and PDF from ``results.json`` and the images.

Public names
------------
write_report
    Write ``report.html`` and ``report.pdf`` (summary, dose table with uncertainties for every
    engine and BED, fused CT/SPECT/dose slices with isodose lines and VOI contours, TAC fits,
    DVHs, provenance, signature block).
ReportImages
    The CT, dose, first-time-point SPECT and VOI label map on one grid.
load_results
    Check a results dict (or ``results.json``) and return what the report shows.

See ``docs/report.md`` for the keys of ``results`` that the report reads.
"""

from theradose.report._images import ReportImages
from theradose.report._report import write_report
from theradose.report._results import load_results

__all__ = ["ReportImages", "load_results", "write_report"]
