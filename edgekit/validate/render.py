"""Markdown and HTML building blocks shared by every report (run, device, results table)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table as lines (header, rule, one line per row)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def html_table(header: Sequence[str], rows: Iterable[Sequence[str]], row_classes: Iterable[str] | None = None) -> str:
    """An HTML table, every cell escaped; ``row_classes`` (one per row) styles rows (e.g. 'fail')."""
    esc = html.escape
    rows = list(rows)
    classes = list(row_classes) if row_classes is not None else [""] * len(rows)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        (f"<tr class='{esc(c)}'>" if c else "<tr>") + "".join(f"<td>{esc(x)}</td>" for x in r) + "</tr>"
        for r, c in zip(rows, classes)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_figures(images: dict[str, str]) -> str:
    """``<figure>`` elements for base64 PNGs keyed by caption."""
    esc = html.escape
    return "".join(
        f"<figure><img alt='{esc(k)}' src='data:image/png;base64,{v}'/><figcaption>{esc(k)}</figcaption></figure>"
        for k, v in images.items()
    )
