"""Markdown and HTML building blocks shared by every report (run, device, results table)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table as lines (header, rule, one line per row)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def html_figures(images: dict[str, str]) -> str:
    """``<figure>`` elements for base64 PNGs keyed by caption."""
    esc = html.escape
    return "".join(
        f"<figure><img alt='{esc(k)}' src='data:image/png;base64,{v}'/><figcaption>{esc(k)}</figcaption></figure>"
        for k, v in images.items()
    )
