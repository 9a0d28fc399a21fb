"""THE SMOKE TEST of benchmarks/gpu/campaign.sh: ``--smoke`` runs the GPU script's whole path on CPU (prepare.py's
data subsets, the four comparisons side by side with about 2 s budgets and small sizes, one seed and one sweep
point per plan entry, comparisons.py) and must write a comparisons.json row for every pair of every plan. About
1.5 minutes on an idle 2-core CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KEYS = {"method", "baseline", "dataset", "split", "metric", "budget_min", "machine", "seeds", "method_scores",
        "baseline_scores", "method_steps", "baseline_steps", "diff_mean", "diff_ci95", "p_value", "verdict"}


@pytest.mark.gpu_smoke
@pytest.mark.slow
def test_gpu_campaign_smoke_on_cpu(data_root: Path, tmp_path: Path) -> None:
    for name in ("isbi2012", "drive", "cvc_clinicdb", "acdc"):  # the full datasets (skips, naming one, without it)
        if not (data_root / name).is_relative_to(data_root):
            pytest.skip(f"needs the full '{name}' dataset (the embedded sample is not enough for prepare.py)")
    carry = tmp_path / "carry"
    subprocess.run([sys.executable, str(REPO / "benchmarks/gpu/prepare.py"), "--smoke", "--no-wheels", "--data",
                    str(data_root), "--out", str(carry)], check=True, timeout=120)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run([str(REPO / "benchmarks/gpu/campaign.sh"), str(out), "--smoke", "--data",
                           str(carry / "data"), "--carry", str(carry)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads((out / "smoke-cpu/comparisons.json").read_text())
    pairs = {(r["dataset"], r["method"], r["baseline"]) for r in rows}
    assert pairs == {("isbi2012", "drfl", "unet"), ("isbi2012", "drfl(variant=ss)", "unet"),
                     ("drive", "ds2f_unet", "unet (ds2f_unet with sr_stream=false, LR input)"),
                     ("cvc_clinicdb", "efen", "efen(variant=unet)"), ("cvc_clinicdb", "efen", "unet"),
                     ("acdc", "danie_s", "unet")}
    for r in rows:
        assert set(r) >= KEYS and len(r["method_scores"]) == len(r["baseline_scores"]) == 1
        assert r["verdict"] in ("better", "worse", "no detectable difference")
    text = (out / "COMPARISONS.md").read_text()
    assert text.count("![") == 4 and all((out / "curves/smoke-cpu" / f"{c}.png").is_file()
                                          for c in ("isbi2012_drfl", "drive_ds2f", "cvc_efen", "acdc_danie"))
