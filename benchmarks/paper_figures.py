"""The papers' own cost figures, and the Markdown table that sets dualseg's measurements beside them.

Used by ``benchmarks/models.py``: a row measured (timed) in that run is matched by model, options and input;
any other row is counted here (parameters and MACs are deterministic, no timing needed).

Each table is compared in two ways: absolute (our GMACs beside the paper's figure, whatever the paper's unit) and
relative to the table's first row, which does not depend on the unit, the counter or the input size the paper
used (DS2F and EFEN do not state theirs for these tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import dualseg
from dualseg.benchmark import count_flops


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper's cost table and the dualseg model that corresponds to it."""

    label: str
    model: str
    args: dict[str, Any] = field(default_factory=dict)
    figure: float | None = None  # the paper's cost figure (its unit: PaperTable.unit)
    params_m: float | None = None  # the paper's parameter count, millions
    seconds: float | None = None  # the paper's inference time per image


@dataclass(frozen=True)
class PaperTable:
    """A paper's table, the input dualseg measures it at, and what the paper's figure is."""

    source: str
    unit: str
    input: tuple[int, int, int]  # C, H, W
    rows: tuple[PaperRow, ...]
    num_classes: int = 2
    note: str = ""


DRFL_PAPER = {"preset": "paper"}
DS2F_LR = {"upscale": 2}
DANIE_ADD = {"img_size": 224, "fusion": "add"}
PAPER_TABLES: tuple[PaperTable, ...] = (
    PaperTable(
        "DRFL Table 8 (PROMISE 2012 ablation)", '"FLOPs" (G)', (1, 256, 256),
        (
            PaperRow("SS", "drfl", {"variant": "ss", **DRFL_PAPER}, 21.5),
            PaperRow("SS + SRS", "drfl", {"variant": "ss_srs", **DRFL_PAPER}, 21.9),
            PaperRow("DFM (SS + SRS + FM)", "drfl", {"variant": "dfm", **DRFL_PAPER}, 22.6),
            PaperRow("DFM + RFTM", "drfl", {"variant": "dfm_rftm", **DRFL_PAPER}, 23.1),
            PaperRow("DRFL (DFM + RFTM + PFAM)", "drfl", {"variant": "drfl", **DRFL_PAPER}, 23.7),
        ),
        note="why the increments disagree: docs/drfl.md, 'Cost against the paper's Table 8'",
    ),
    PaperTable(
        "DRFL Table 4 (PROMISE 2012 comparison)", '"FLOPs" (G)', (1, 256, 256),
        (
            PaperRow("U-Net", "unet", {}, 14.8),
            PaperRow("DeepLabV3+", "deeplabv3plus", {}, 40.6),
            PaperRow("Attention U-Net", "attention_unet", {}, 21.3),
            PaperRow("U-Net++", "unetpp", {}, 27.4),
            PaperRow("DRFL", "drfl", {"variant": "drfl", **DRFL_PAPER}, 23.7),
        ),
        note="the paper's baseline widths are not stated; dualseg's baselines use base width 32 (U-Net 7.8 M)",
    ),
    PaperTable(
        "DS2F Table VII (HRF vessels)", "GFLOPs", (3, 128, 128),
        (
            PaperRow("U-Net", "ds2f_unet", {**DS2F_LR, "sr_stream": False}, 384.49),
            PaperRow("Ours* (U-Net + SR stream + MSCG)", "ds2f_unet", DS2F_LR, 384.49),
        ),
        note="HRF input size not stated; the claim checked is the ratio: the SR stream and MSCG cost nothing at "
        "inference (eval forward)",
    ),
    PaperTable(
        "EFEN Table 3 (CVC-ClinicDB)", "params (M), s/image", (3, 288, 384),
        (
            PaperRow("U-Net (VGG-19)", "efen", {"variant": "unet"}, params_m=18.93, seconds=1.56),
            PaperRow("EFEN", "efen", {"variant": "efen"}, params_m=29.44, seconds=4.97),
        ),
        note="the paper's time is per image on an unstated machine; ours is the eval latency measured here",
    ),
    PaperTable(
        "DANIE Table 1 (Synapse)", '"GFLOPs"', (3, 224, 224),
        (
            PaperRow("DANIE-S", "danie_s", {"img_size": 224}, 13.29),
            PaperRow("DANIE-L", "danie_l", {"img_size": 224}, 26.55),
        ),
        num_classes=9,
        note="the paper's 'GFLOPs' are multiply-adds (docs/danie.md, 'Cost vs the paper')",
    ),
    PaperTable(
        "DANIE Table 4 (GlaS)", '"GFLOPs"', (3, 224, 224),
        (
            PaperRow("UNet", "unet", {}, 65.63),
            PaperRow("UNet++", "unetpp", {}, 138.66),
            PaperRow("AttnUnet", "attention_unet", {}, 66.64),
            PaperRow("DANIE-S", "danie_s", {"img_size": 224}, 13.29),
            PaperRow("DANIE-L", "danie_l", {"img_size": 224}, 26.55),
        ),
        note="the paper's baselines are wider (base 64, ~31 M for UNet); dualseg's use base width 32",
    ),
    PaperTable(
        "DANIE Table 5 (dual attention encoder ablation, DANIE-L)", '"GFLOPs"', (3, 224, 224),
        (
            PaperRow("A.5 DANIE (fusion: add)", "danie_l", DANIE_ADD, 25.16),
            PaperRow("A.1 w/o hierarchical attention", "danie_l", {**DANIE_ADD, "streams": "sap"}, 19.06),
            PaperRow("A.2 w/o self-attention", "danie_l", {**DANIE_ADD, "streams": "hap"}, 10.98),
            PaperRow("A.3 w/o spatial att", "danie_l", {**DANIE_ADD, "spatial_attention": False}, 22.13),
            PaperRow("A.4 w/o channel att", "danie_l", {**DANIE_ADD, "channel_attention": False}, 23.25),
        ),
        num_classes=9,
    ),
    PaperTable(
        "DANIE Table 7 (Joint Preservation ablation, DANIE-L)", '"GFLOPs"', (3, 224, 224),
        (
            PaperRow("C.2 Add", "danie_l", DANIE_ADD, 25.16),
            PaperRow("C.1 Concat + Res", "danie_l", {"img_size": 224, "fusion": "concat_res"}, 27.88),
            PaperRow("C.3 EH + Add", "danie_l", {"img_size": 224, "fusion": "eh_add"}, 26.53),
            PaperRow("C.4 ES + Add", "danie_l", {"img_size": 224, "fusion": "es_add"}, 26.52),
            PaperRow("C.5 Joint Preservation", "danie_l", {"img_size": 224}, 26.55),
        ),
        num_classes=9,
    ),
)


def _measured(results: list[dict[str, Any]], row: PaperRow, table: PaperTable) -> dict[str, Any] | None:
    for r in results:
        if (
            "error" not in r
            and r["model"] == row.model
            and r["model_args"] == row.args
            and r["num_classes"] == table.num_classes
            and (r["in_channels"], *r["input_size"]) == table.input
        ):
            return r
    return None


def count_row(row: PaperRow, table: PaperTable) -> dict[str, Any]:
    """Parameters and eval-mode GMACs of one row (one image), without timing."""
    c, h, w = table.input
    model = dualseg.create_model(row.model, in_channels=c, num_classes=table.num_classes, **row.args).eval()
    flops = count_flops(model, torch.zeros(1, c, h, w))
    return {"params": sum(p.numel() for p in model.parameters()), "gmacs": flops / 2e9, "latency_ms": None}


def compare(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every paper row with our figures: taken from ``results`` (a timed run) where it was measured, else counted."""
    out = []
    for table in PAPER_TABLES:
        for row in table.rows:
            ours = _measured(results, row, table) or count_row(row, table)
            out.append({
                "source": table.source, "label": row.label, "model": row.model, "model_args": row.args,
                "input": list(table.input), "params": ours["params"], "gmacs": ours["gmacs"],
                "latency_ms": ours.get("latency_ms"), "paper_figure": row.figure, "paper_unit": table.unit,
                "paper_params_m": row.params_m, "paper_seconds": row.seconds,
            })
    return out


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}" if value is not None and reference else "-"


def markdown(rows: list[dict[str, Any]]) -> str:
    """One Markdown section per paper table: ours beside the paper, absolute and relative to the first row."""
    lines = [
        "## Against the papers' own figures",
        "",
        "Ours: parameters and GMACs (multiply-adds, one image, eval forward) from this run, latency where the row "
        "was timed. 'x first row' divides by the table's first row, for ours and for the paper alike: it does "
        "not depend on the paper's unit (MACs or FLOPs), counter or input size.",
    ]
    for table in PAPER_TABLES:
        mine = [r for r in rows if r["source"] == table.source]
        first = mine[0]
        c, h, w = table.input
        lines += ["", f"### {table.source}", "", f"Ours at {c}x{h}x{w}, {table.num_classes} classes. "
                  f"Paper unit: {table.unit}." + (f" Note: {table.note}." if table.note else ""), ""]
        if any(r["paper_seconds"] is not None for r in mine):
            lines += [
                "| row | model | params (M) ours | params (M) paper | latency ms ours | s/image paper "
                "| latency x first row: ours | paper |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in mine:
                lat = f"{r['latency_ms']:.1f}" if r["latency_ms"] is not None else "-"
                lines.append(
                    f"| {r['label']} | `{r['model']}` {_args(r)} | {r['params'] / 1e6:.2f} | {r['paper_params_m']} "
                    f"| {lat} | {r['paper_seconds']} | {_ratio(r['latency_ms'], first['latency_ms'])} "
                    f"| {_ratio(r['paper_seconds'], first['paper_seconds'])} |"
                )
            continue
        lines += [
            "| row | model | params (M) | GMACs ours | paper | GMACs x first row: ours | paper |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in mine:
            lines.append(
                f"| {r['label']} | `{r['model']}` {_args(r)} | {r['params'] / 1e6:.2f} | {r['gmacs']:.2f} "
                f"| {r['paper_figure']} | {_ratio(r['gmacs'], first['gmacs'])} "
                f"| {_ratio(r['paper_figure'], first['paper_figure'])} |"
            )
    return "\n".join(lines) + "\n"


def _args(row: dict[str, Any]) -> str:
    shown = {k: v for k, v in row["model_args"].items() if k != "img_size"}
    return ", ".join(f"{k}={v}" for k, v in shown.items())
