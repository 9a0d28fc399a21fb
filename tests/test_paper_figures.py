"""``benchmarks/paper_figures.py``: every paper row names a registered model and options it accepts; matching of
timed rows; the ratio columns of the Markdown table."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

import dualseg
from dualseg.models.danie import DANIE
from dualseg.registry import MODELS

_spec = importlib.util.spec_from_file_location(
    "paper_figures", Path(__file__).resolve().parents[1] / "benchmarks/paper_figures.py"
)
paper_figures = importlib.util.module_from_spec(_spec)
sys.modules["paper_figures"] = paper_figures  # dataclasses look their module up
_spec.loader.exec_module(paper_figures)

ROWS = [(t, r) for t in paper_figures.PAPER_TABLES for r in t.rows]


@pytest.mark.parametrize(("table", "row"), ROWS, ids=[f"{t.source[:12]}:{r.label[:20]}" for t, r in ROWS])
def test_rows_name_registered_models_and_accepted_options(table, row):
    assert row.model in dualseg.list_models()
    accepted = inspect.signature(MODELS.get(row.model)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):  # factories: danie_s(**options)
        accepted = inspect.signature(DANIE).parameters
    unknown = set(row.args) - set(accepted)
    assert not unknown, f"{row.model} does not take {unknown}"
    assert (row.figure is not None) or (row.params_m is not None)


def _result(model, args, channels, size, gmacs, latency, num_classes=2):
    return {"model": model, "model_args": args, "in_channels": channels, "input_size": list(size),
            "num_classes": num_classes, "params": 1_000_000, "gmacs": gmacs, "latency_ms": latency}


def test_timed_rows_are_used_and_ratios_are_relative_to_the_first_row(monkeypatch):
    table = paper_figures.PaperTable(
        "T", "GFLOPs", (1, 64, 64),
        (paper_figures.PaperRow("base", "unet", {}, 10.0), paper_figures.PaperRow("big", "unet", {"x": 1}, 25.0)),
    )
    monkeypatch.setattr(paper_figures, "PAPER_TABLES", (table,))
    counted = []
    monkeypatch.setattr(paper_figures, "count_row", lambda row, t: counted.append(row.label) or
                        {"params": 2_000_000, "gmacs": 6.0, "latency_ms": None})
    timed = [_result("unet", {}, 1, (64, 64), 3.0, 5.0), _result("unet", {"x": 1}, 1, (32, 32), 99.0, 5.0)]
    rows = paper_figures.compare(timed)
    assert counted == ["big"]  # the 32x32 result is another input: counted, not taken
    assert [r["gmacs"] for r in rows] == [3.0, 6.0]
    text = paper_figures.markdown(rows)
    assert "| big | `unet` x=1 | 2.00 | 6.00 | 25.0 | 2.00 | 2.50 |" in text
    assert "| base | `unet`  | 1.00 | 3.00 | 10.0 | 1.00 | 1.00 |" in text
