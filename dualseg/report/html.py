"""A self-contained HTML page of a report: inline CSS, images embedded as base64, no scripts, no external links."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

from dualseg.report.document import Block, Figure, Gallery, Heading, Text
from dualseg.report.tables import MISSING, Table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.3rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 0.3rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; white-space: nowrap; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
.table-wrap { overflow-x: auto; max-width: 100%; }
p.note { font-size: 0.85rem; color: #555; margin-top: 0; }
figure { display: inline-block; margin: 0.4rem 0.8rem 0.8rem 0; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #333; max-width: 560px; }
.gallery figure img { max-width: 560px; }
"""


def embed_image(path: Path) -> str:
    """A ``data:`` URI of a PNG file: its own bytes, or a JPEG (quality 90, no chroma subsampling, so thin coloured
    lines stay sharp) when that is less than half the size, as for photographs and micrographs with overlays."""
    from PIL import Image

    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        jpeg = io.BytesIO()
        image.convert("RGB").save(jpeg, format="JPEG", quality=90, subsampling=0)
    if jpeg.tell() < len(data) / 2:
        return "data:image/jpeg;base64," + base64.b64encode(jpeg.getvalue()).decode("ascii")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def table_html(table: Table) -> str:
    right = table.columns_right or [i > 0 for i in range(len(table.header))]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    rows = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            text = html.escape(cell.text)
            if cell.bold and cell.text != MISSING:
                text = f"<strong>{text}</strong>"
            cls = ' class="num"' if i < len(right) and right[i] else ""
            cells.append(f"<td{cls}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (f'<div class="table-wrap"><table><caption>{html.escape(table.title)}</caption><thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>{note}")


def figure_html(figure: Figure) -> str:
    caption = html.escape(figure.caption)
    return f'<figure><img src="{embed_image(figure.path)}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'


def to_html(blocks: Sequence[Block], title: str) -> str:
    """The whole page; every image is read from disk and embedded."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 2), 6)
            body.append(f"<h{level}>{html.escape(block.text)}</h{level}>")
        elif isinstance(block, Text):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(table_html(block))
        elif isinstance(block, Figure):
            body.append(figure_html(block))
        elif isinstance(block, Gallery):
            figures = "".join(figure_html(f) for f in block.figures)
            body.append(f'<div class="gallery"><h3>{html.escape(block.title)}</h3>{figures}</div>')
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
