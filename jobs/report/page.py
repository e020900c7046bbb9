"""Render report sections as one self-contained HTML page (inline CSS, PNGs as data URIs)."""

from __future__ import annotations

import base64
from html import escape

from jobs.report.sections import Section

STYLE = """
body { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
.subtitle { color: #666; margin-top: 0; }
nav ol { columns: 2; }
section { border-top: 1px solid #ddd; padding-top: 0.6em; margin-top: 1.6em; }
.how { background: #f4f7fb; border-left: 4px solid #1f77b4; padding: 0.4em 0.8em; }
.empty { color: #8a6d3b; background: #fcf8e3; padding: 0.6em 0.8em; }
.note { color: #444; }
img { display: block; max-width: 100%; height: auto; margin: 0.6em 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
th { background: #f0f0f0; }
"""


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    headers = list(rows[0])
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(row.get(h, '')))}</td>" for h in headers) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(section: Section) -> str:
    parts = [f'<section id="{escape(section.key)}">', f"<h2>{escape(section.title)}</h2>"]
    parts.append(f'<p class="how"><strong>How to read it:</strong> {escape(section.how_to_read)}</p>')
    if section.empty:
        parts.append(f'<p class="empty">{escape(section.empty)}</p>')
    if section.figure:
        encoded = base64.b64encode(section.figure).decode("ascii")
        parts.append(f'<img src="data:image/png;base64,{encoded}" alt="{escape(section.title)}">')
    if section.note:
        parts.append(f'<p class="note">{escape(section.note)}</p>')
    parts.append(_table(section.table))
    parts.append("</section>")
    return "\n".join(parts)


def render_page(sections: list[Section], title: str, subtitle: str) -> str:
    """The whole page: a title, a table of contents and the sections, with nothing to fetch."""
    toc = "".join(f'<li><a href="#{escape(s.key)}">{escape(s.title)}</a></li>' for s in sections)
    body = "\n".join(_section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
        f'<h1>{escape(title)}</h1><p class="subtitle">{escape(subtitle)}</p>\n'
        f"<nav><ol>{toc}</ol></nav>\n{body}\n</body></html>\n"
    )
