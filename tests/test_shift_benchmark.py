"""benchmarks/shift.py: the shifts on tiny arrays (sizes, gamma values, gains), and the whole benchmark on a tiny run
trained on a synthetic fundus-like folder (FOV masks, proxy fov_diameter)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dualseg.config import load_config
from dualseg.engine.trainer import Trainer
from tests.inference.scale_images import disc, fundus

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import shift  # noqa: E402


def _case(h: int = 4, w: int = 6, channels: int = 3) -> shift.Case:
    image = np.full((h, w, channels), 0.5, np.float32)
    labels = np.zeros((h, w), np.uint8)
    labels[: h // 2] = 1
    return shift.Case("a.png", image, labels, np.ones((h, w), np.uint8))


def test_rescale_moves_image_and_masks_together() -> None:
    case = _case()
    up = shift.rescale(case, 1.7)
    assert up.image.shape == (7, 10, 3) and up.labels.shape == up.fov.shape == (7, 10)
    assert set(np.unique(up.labels)) == {0, 1} and up.labels.dtype == np.uint8  # nearest: no new values
    np.testing.assert_allclose(up.image, 0.5, atol=1e-6)
    down = shift.rescale(_case(10, 20), 0.6)
    assert down.image.shape == (6, 12, 3) and down.labels.shape == (6, 12)
    assert down.labels[:3].min() == 1 and down.labels[3:].max() == 0


def test_gamma_cast_blur_and_jpeg_values() -> None:
    case = _case()
    np.testing.assert_allclose(shift.gamma(case, 0.6).image, 0.5**0.6)  # 0.660
    np.testing.assert_allclose(shift.gamma(case, 1.6).image, 0.5**1.6)  # 0.330
    cast = shift.colour_cast(case).image
    np.testing.assert_allclose(cast[0, 0], [0.5 * 0.77, 0.5 * 0.56, 0.5 * 0.42], rtol=1e-6)  # darker and redder
    np.testing.assert_allclose(shift.colour_cast(_case(channels=1)).image, 0.35, rtol=1e-6)  # gray: x0.7
    np.testing.assert_allclose(shift.colour_cast(shift.Case("b", np.ones((1, 1, 3), np.float32), case.labels[:1, :1],
                                                            None)).image[0, 0], [0.77, 0.56, 0.42], rtol=1e-6)
    spot = _case(9, 9)
    spot.image[:] = 0
    spot.image[4, 4] = 1
    blurred = shift.blur(spot, 1.5).image
    assert blurred[4, 4, 0] < 0.1 and blurred.sum() == pytest.approx(3, rel=0.05)  # spread, energy kept
    flat = shift.jpeg(_case(16, 16), 30)
    assert flat.image.shape == (16, 16, 3) and np.abs(flat.image - 0.5).max() < 0.02
    assert shift.to_stored(case.image).dtype == np.uint8 and shift.to_stored(_case(channels=1).image).ndim == 2


@pytest.fixture(scope="module")
def fundus_run(tmp_path_factory) -> Path:
    """A U-Net of a few steps on 8 synthetic fundus photographs (diameter 100-110 px), with FOV masks."""
    root = tmp_path_factory.mktemp("fundus")
    for folder in ("images", "masks", "fov_masks"):
        (root / folder).mkdir()
    for k in range(8):
        diameter = 100 + (k % 3) * 5
        image = fundus((128, 128), diameter, seed=k)
        inside = disc((128, 128), diameter)
        yy, xx = np.mgrid[:128, :128]
        vessels = (np.sin(xx / 7.0 + yy / 11.0) > 0.9) & inside
        Image.fromarray(image).save(root / "images" / f"{k}.png")
        Image.fromarray((vessels * 255).astype(np.uint8)).save(root / "masks" / f"{k}.png")
        Image.fromarray((inside * 255).astype(np.uint8)).save(root / "fov_masks" / f"{k}.png")
    out = root.parent / "fundus_run"
    cfg = load_config(None, [
        f"data.root={root}", f"output_dir={out}", "data.fov_dir=fov_masks", "data.scale_proxy=fov_diameter",
        "model.in_channels=3", "model.args={channels: [4, 8]}", "train.batch_size=2", "train.iters_per_epoch=3",
        "train.epochs=1", "train.precision=fp32", "train.threads=1",
    ])
    Trainer(cfg, progress=False).fit()
    return out


def test_the_benchmark_on_a_tiny_fundus_run(fundus_run: Path, tmp_path: Path) -> None:
    assert shift.main([str(fundus_run), "--split", "val", "--results-dir", str(tmp_path), "--device", "cpu"]) == 0
    [result] = list(tmp_path.glob("*/shift/fundus_run.json"))
    record = json.loads(result.read_text())
    assert record["scale_proxy"] == "fov_diameter" and record["train_scale"] == pytest.approx(105, abs=2)
    assert record["fov"] and record["images"] == 2 and record["machine_tag"] == result.parent.parent.name
    [epoch] = list(csv.DictReader((fundus_run / "metrics.csv").read_text().splitlines()))
    assert record["training"]["epochs"] == 1 and record["training"]["monitor"] == "dice"
    assert record["training"]["best_val"] == pytest.approx(float(epoch["val_dice"]), abs=1e-4)
    rows = {(r["shift"], r["scale"]): r for r in record["results"]}
    assert set(rows) == {(s, m) for s in shift.SHIFTS for m in ("none", "auto")}
    assert rows[("none", "none")]["kept"] == pytest.approx(1.0)
    for r in rows.values():
        assert 0 <= r["dice"] <= 1 and len(r["per_image"]) == 2
    # --scale none never resamples; auto undoes the rescaling: factors near 1/0.6 and 1/1.7
    assert all(f is None for f in rows[("rescale x1.7", "none")]["factors"].values())
    for name, stretch in ((" x0.6", 0.6), (" x1.7", 1.7), (" x1.7 + colour cast", 1.7)):
        for image, f in rows[(f"rescale{name}", "auto")]["factors"].items():
            diameter = 100 + (int(Path(image).stem) % 3) * 5  # as drawn by fundus_run
            assert f == pytest.approx(record["train_scale"] / (diameter * stretch), rel=0.03)
    table = result.with_suffix(".md").read_text()
    assert f"Training: config `{record['training']['name']}`, 1 epoch in " in table
    assert "| rescale x1.7 + colour cast |" in table and table.count("\n|") == 2 + len(shift.SHIFTS)
