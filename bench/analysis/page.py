"""One look for every page and one way to write a number.

``report.html``, ``compare.html``, ``capacity.html`` and ``history.html`` share the page shell
``templates/page.html`` (its style sheet, its banners); every table cell and console column
writes numbers through ``num``.
"""

from __future__ import annotations

import math

from jinja2 import Environment, PackageLoader, select_autoescape


def num(v, digits: int | None = None, pct: bool = False, signed: bool = False) -> str:
    """A number for people: "–" when missing; thousands separated; 1 decimal below 1,000, none above
    (or ``digits``); ``pct`` shows a share as a percentage; ``signed`` shows the sign of a difference."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if pct:
        return f"{100 * v:{'+' if signed else ''}.1f}%"
    if isinstance(v, int) and digits is None:
        return f"{v:{'+' if signed else ''},d}"
    d = digits if digits is not None else (1 if abs(v) < 1000 else 0)
    return f"{v:{'+' if signed else ''},.{d}f}"


def environment() -> Environment:
    env = Environment(loader=PackageLoader("bench", "templates"), autoescape=select_autoescape(["html"]))
    env.globals["num"] = num
    return env


def render_page(title: str, body_html: str) -> str:
    """A page in the shared shell around already-escaped HTML (tables, inlined SVG charts)."""
    tpl = environment().from_string(
        '{% extends "page.html" %}{% block title %}{{ title }}{% endblock %}{% block body %}{{ body|safe }}{% endblock %}'
    )
    return tpl.render(title=title, body=body_html)


def md_tables_to_html(markdown: str) -> str:
    """Markdown of headings, paragraphs, quotes and pipe tables (what capacity.md holds) as HTML."""
    import html

    def table(lines: list[str]) -> str:
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines if not set(line) <= set("|-: ")]
        head, body = rows[0], rows[1:]
        return (
            "<table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
            + "</table>"
        )

    blocks, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
            continue
        if current:
            blocks.append(table(current))
            current = []
        if line.startswith("### "):
            blocks.append(f"<h2>{html.escape(line[4:])}</h2>")
        elif line.startswith("> "):
            blocks.append(f"<div class='warn'>{html.escape(line[2:])}</div>")
        elif line.strip():
            blocks.append(f"<p>{html.escape(line)}</p>")
    if current:
        blocks.append(table(current))
    return "".join(blocks)
