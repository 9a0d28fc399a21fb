"""A report as a list of blocks (headings, text, tables, figures) that render to Markdown and to HTML alike."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dualseg.report.tables import Table


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Gallery:
    """Figures shown in a row (wrapping), each with its caption."""

    title: str
    figures: list[Figure] = field(default_factory=list)


Block = Heading | Text | Table | Figure | Gallery


def to_markdown(blocks: Sequence[Block], report_dir: Path) -> str:
    """Markdown with image links relative to ``report_dir`` (where the Markdown file is written)."""

    def link(path: Path) -> str:
        return Path(os.path.relpath(Path(path).resolve(), Path(report_dir).resolve())).as_posix()

    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Text):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(block.to_markdown())
        elif isinstance(block, Figure):
            parts.append(f"![{block.caption}]({link(block.path)})\n\n*{block.caption}*")
        elif isinstance(block, Gallery):
            rows = [f"**{block.title}**", ""]
            rows += [f"![{f.caption}]({link(f.path)}) *{f.caption}*" for f in block.figures]
            parts.append("\n\n".join(rows) if block.figures else rows[0])
    return "\n\n".join(parts) + "\n"
