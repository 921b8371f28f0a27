"""Self-contained HTML: tables, PNG figures embedded as base64, a small print-friendly CSS."""

from __future__ import annotations

import base64
from html import escape

from theradose.report._content import SIGNATURE_LINES, Section

__all__ = ["render_html"]

CSS = """
body { font-family: Helvetica, Arial, sans-serif; font-size: 13px; color: #222; margin: 2em auto;
       max-width: 60em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #345; padding-bottom: .2em; }
h2 { font-size: 1.2em; color: #345; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .4em 0; }
th, td { border: 1px solid #bbb; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #eef2f6; }
td.num { text-align: right; white-space: nowrap; }
figure { margin: .6em 0; } figcaption { font-size: .9em; color: #555; }
img { max-width: 100%; }
.note { font-size: .9em; color: #555; }
.sign td { border: none; padding: 1.2em .5em 0 0; }
.line { display: inline-block; width: 22em; border-bottom: 1px solid #333; }
@media print { body { margin: 0; } h2 { page-break-after: avoid; } }
"""


def _is_num(s: str) -> bool:
    return bool(s) and (s[0].isdigit() or (s[0] in "+-" and s[1:2].isdigit()))


def _section_html(s: Section | None) -> str:
    if s is None:
        return ""
    out = [f"<h2>{escape(s.title)}</h2>"]
    if s.pairs:
        out.append("<table>")
        out += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in s.pairs]
        out.append("</table>")
    if s.header:
        out.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in s.header) + "</tr>")
        for row in s.rows:
            cells = "".join(
                f'<td class="num">{escape(c)}</td>' if _is_num(c) else f"<td>{escape(c)}</td>"
                for c in row)
            out.append(f"<tr>{cells}</tr>")
        out.append("</table>")
    if s.note:
        out.append(f'<p class="note">{escape(s.note)}</p>')
    return "\n".join(out)


def _figure_html(png: bytes, caption: str, alt: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{b64}" alt="{escape(alt)}">{cap}</figure>'


def render_html(title: str, sections: dict[str, Section | None],
                figures: dict[str, list[tuple[bytes, str]]]) -> str:
    """Assemble the report page.

    Parameters
    ----------
    title : str
        Page title.
    sections : dict
        From :func:`~theradose.report._content.build_sections`.
    figures : dict
        ``{"slices"|"tacs"|"dvh": [(png bytes, caption), ...]}``.

    """
    body = [f"<h1>{escape(title)}</h1>", _section_html(sections["summary"]),
            _section_html(sections.get("warnings")), _section_html(sections["time_points"]),
            _section_html(sections["dose"]), _section_html(sections["truth"])]
    titles = {"slices": "Images: CT, SPECT and dose", "tacs": "Time-activity curves",
              "dvh": "Dose-volume histograms"}
    for key, heading in titles.items():
        if figures.get(key):
            body.append(f"<h2>{heading}</h2>")
            body += [_figure_html(png, cap, heading) for png, cap in figures[key]]
    for key in ("fits", "pvc", "registration", "methods"):
        body.append(_section_html(sections[key]))
    sign = "".join(f'<tr><td>{escape(s)}:</td><td><span class="line">&nbsp;</span></td></tr>'
                   for s in SIGNATURE_LINES)
    body.append(f'<h2>Review</h2><table class="sign">{sign}</table>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(b for b in body if b) + "\n</body></html>\n")
