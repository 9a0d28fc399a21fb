"""A checkpoint and a package written by an older dualseg (benchmarks/parity/legacy_fixture.py, at the commit in
legacy.json) still load and predict, through ``dualseg predict``, the masks that version predicted (in fp32, as it
did on the AVX-512 CPU that wrote them: on another CPU kind the vector kernels may round a near-tie pixel the other
way, so up to 0.05 % of the pixels may differ; a wrong input spec changes tens of percent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dualseg
from dualseg.cli import main

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "compat"
META = json.loads((LEGACY / "legacy.json").read_text())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("legacy_inputs")
    for name in META["inputs"]:
        shutil.copy(dualseg.sample_data_path("isbi2012") / "images" / name, folder / name)
    return folder


@pytest.mark.parametrize("source", ["checkpoint.pt", "package"])
@pytest.mark.parametrize("run", sorted(META["runs"]))
def test_legacy_model_predicts_the_same_masks(run: str, source: str, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    assert main(["predict", str(LEGACY / run / source), str(inputs), str(out), "--no-overlays", "--no-progress",
                 "--precision", "fp32"]) == 0
    expected = sorted((LEGACY / run / "masks").glob("*.png"))
    assert [p.name for p in expected] == sorted(p.name for p in out.glob("*.png"))
    for mask in expected:
        old, new = np.array(Image.open(mask)), np.array(Image.open(out / mask.name))
        assert len(np.unique(old)) > 1  # a constant mask would prove nothing
        assert old.shape == new.shape
        differ = float(np.mean(new != old))
        assert differ <= 5e-4, f"{run}/{source}: {mask.name}: {differ:.2%} of the pixels differ"
