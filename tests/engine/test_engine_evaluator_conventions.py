"""The evaluator with the metric conventions: synthetic volumes with oracle and blind models, SR quality, threshold
tuning, 'dualseg evaluate --convention/--tune-threshold/--select-on', and volume grouping on real ACDC slices."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dualseg.cli import main
from dualseg.config import EvalConfig, load_config
from dualseg.data.build import make_dataset, prepare_data
from dualseg.data.dataset import SegmentationDataset
from dualseg.data.descriptions import DatasetDescription
from dualseg.data.layouts import scan_folder
from dualseg.engine.evaluator import evaluate_dataset
from dualseg.engine.run_evaluation import per_image_csv
from dualseg.engine.thresholds import tune_threshold
from dualseg.errors import DualsegError
from dualseg.inference.spec import InputSpec
from dualseg.metrics.surface import diagonal
from dualseg.report.summary_text import format_summary

CPU = torch.device("cpu")
SIZE = 24
PATTERN = r"^(vol\d)_slice_\d+$"


def _square(k: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    if k:  # slice 0 of each volume is empty
        mask[4 + k : 12 + k, 5:14] = 255
    return mask


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two volumes of three 24x24 slices; images are the masks plus a gray offset."""
    root = tmp_path_factory.mktemp("vols")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for v in (1, 2):
        for k in range(3):
            mask = _square(k * v)
            Image.fromarray(mask).save(root / "masks" / f"vol{v}_slice_{k}.png")
            Image.fromarray((mask // 2 + 40).astype(np.uint8)).save(root / "images" / f"vol{v}_slice_{k}.png")
    return root


def _dataset(root) -> SegmentationDataset:
    description = DatasetDescription("vols", 1, ("background", "square"), {0: 0, 255: 1}, volume_pattern=PATTERN)
    return SegmentationDataset(scan_folder(root, "images", "masks").samples, description, normalize="unit")


class Oracle(nn.Module):
    """One sigmoid logit from the intensity: the square (0.66) vs background (0.16); ``bias`` shifts it."""

    num_classes = 1
    size_divisor = 1

    def __init__(self, bias: float = 0.0, blind: bool = False, sr: bool = False) -> None:
        super().__init__()
        self.bias, self.blind, self.sr = bias, blind, sr

    def forward(self, x: torch.Tensor) -> dict:
        logit = torch.full_like(x, -5.0) if self.blind else 20 * (x - 0.4) + self.bias
        out = {"seg": logit}
        if self.sr:
            out["sr"] = F.interpolate(x, scale_factor=2, mode="nearest")
        return out


def test_oracle_is_perfect_under_every_convention(folder) -> None:
    for name in ("per_image", "drfl", "dataset", "per_volume", "transunet"):
        s = evaluate_dataset(Oracle(), _dataset(folder), EvalConfig(convention=name), CPU, extended=True)
        assert s["convention_name"] == name and s["mean"]["dice"] == 1.0, name
        assert s["mean"]["pr_auc"] == 1.0 and s["dataset_level"]["mean"]["pr_auc"] == 1.0
        assert s["mean"]["hd95"] == 0.0 and s["mean"]["asd"] == 0.0
        json.dumps(s, allow_nan=False)
    assert s["n_volumes"] == 2 and [v["n_slices"] for v in s["per_volume"]] == [3, 3]
    assert s["surface"]["spacing"] == [1.0, 1.0, 1.0]


def test_blind_model_and_empty_rules(folder) -> None:
    ds = _dataset(folder)
    per_image = evaluate_dataset(Oracle(blind=True), ds, EvalConfig(), CPU, extended=True)
    assert per_image["per_class"]["square"]["dice"]["n"] == 4  # the two empty slices are skipped
    assert per_image["mean"]["hd95"] == pytest.approx(diagonal((SIZE, SIZE)))  # a miss: the worst distance
    drfl = evaluate_dataset(Oracle(blind=True), ds, EvalConfig(convention="drfl"), CPU)
    assert drfl["per_class"]["square"]["dice"]["n"] == 6 and 0 < drfl["mean"]["dice"] < 1
    volume = evaluate_dataset(Oracle(blind=True), ds, EvalConfig(convention="per_volume"), CPU, extended=True)
    assert volume["mean"]["dice"] == 0.0 and volume["mean"]["hd95"] == pytest.approx(diagonal((3, SIZE, SIZE)))
    transunet = evaluate_dataset(Oracle(blind=True), ds, EvalConfig(convention="transunet"), CPU, extended=True)
    assert transunet["mean"]["dice"] == 0.0 and transunet["mean"]["hd95"] == 0.0  # TransUNet: an empty prediction
    assert "TransUNet" in transunet["surface"]["empty_rule"]


def test_sr_quality_against_the_original_image(folder) -> None:
    s = evaluate_dataset(Oracle(sr=True), _dataset(folder), EvalConfig(), CPU, InputSpec(input_scale=0.5),
                         extended=True)
    q = s["image_quality"]
    assert q["n"] == 6 and q["data_range"] == 1.0 and 5 < q["psnr"]["mean"] < 60
    assert all("psnr" in row and "ssim" in row for row in s["per_image"])
    header = per_image_csv(s).splitlines()[0].split(",")
    assert header[-2:] == ["psnr", "ssim"] and "dice_square" in header and "hd95_square" in header
    # without downsampling the 2x SR output does not match the reference's scale: no PSNR/SSIM rather than nonsense
    mismatched = evaluate_dataset(Oracle(sr=True), _dataset(folder), EvalConfig(), CPU, extended=True)
    assert "image_quality" not in mismatched


def test_threshold_policy(folder) -> None:
    ds = _dataset(folder)
    # bias -7: square logits ~ -1.8 (p 0.14), background ~ -11.8 (p 0): only a low threshold finds the square
    model = Oracle(bias=-7.0)
    assert evaluate_dataset(model, ds, EvalConfig(), CPU)["mean"]["dice"] == 0.0
    chosen, scores = tune_threshold(model, ds, EvalConfig(), CPU)
    assert chosen == 0.05 and scores[0.05] == 1.0 and scores[0.5] == 0.0
    assert evaluate_dataset(model, ds, EvalConfig(threshold=chosen), CPU)["mean"]["dice"] == 1.0
    three_classes = Oracle()
    three_classes.num_classes = 3
    with pytest.raises(DualsegError, match="binary"):
        tune_threshold(three_classes, ds, EvalConfig(), CPU)


def test_missing_volume_pattern_is_explained(folder) -> None:
    ds = _dataset(folder)
    ds.description = DatasetDescription("vols", 1, ("background", "square"), {0: 0, 255: 1})
    with pytest.raises(DualsegError, match="volume_pattern"):
        evaluate_dataset(Oracle(), ds, EvalConfig(convention="per_volume"), CPU)
    s = evaluate_dataset(Oracle(), ds, EvalConfig(convention="per_volume", volume_pattern=PATTERN), CPU)
    assert s["n_volumes"] == 2


def test_evaluate_cli_conventions_and_selection_on_test(folder, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["vol1_slice_1", "vol1_slice_2", "vol1_slice_0"],
                                 "val": ["vol2_slice_0", "vol2_slice_1"], "test": ["vol2_slice_2"]}))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"output_dir: {run}\ndata: {{root: {folder}, normalize: unit, split: {{strategy: file, file: {split}}}}}\n"
        "model: {num_classes: 1, args: {channels: [4, 8]}}\nloss: [{name: bce}]\n"
        "train: {epochs: 1, batch_size: 1, iters_per_epoch: 1, threads: 1, precision: fp32}\n"
        f"eval: {{volume_pattern: '{PATTERN}'}}\n"
    )
    rc = main(["train", str(config), "--no-progress"])
    assert rc == 0
    assert main(["evaluate", str(run), "--split", "val", "--convention", "per_volume"]) == 0
    s = json.loads((run / "eval/val/summary.json").read_text())
    assert s["convention_name"] == "per_volume" and s["n_volumes"] == 1 and s["selected_on"] == "val"
    assert s["paper_reproduction"] is False and s["threshold_selected_on"] is None
    with open(run / "eval/val/per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["vol2_slice_0", "vol2_slice_1"] and "dice_foreground" in rows[0]
    assert main(["evaluate", str(run), "--split", "val", "--select-on", "test"]) == 2  # one-line error
    assert "--tune-threshold" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--split", "val", "--tune-threshold", "--select-on", "test"]) == 0
    out = capsys.readouterr()
    assert "WARNING" in out.out + out.err and "chosen on test" in out.out
    s = json.loads((run / "eval/val/summary.json").read_text())
    assert s["threshold_selected_on"] == "test" and s["paper_reproduction"] is True
    assert s["threshold"] in [float(k) for k in s["threshold_scores"]]
    assert "pr_auc" in format_summary(s)


def test_acdc_volumes_from_real_slices(data_root) -> None:
    """Random tiny U-Net on two ACDC volumes: slices grouped by patient and frame, counts add up per volume."""
    import dualseg

    cfg = load_config(None, [f"data.root={data_root / 'acdc'}", "eval.convention=transunet"])
    bundle = prepare_data(cfg)
    volumes = sorted({s.rsplit("_slice_", 1)[0] for s in bundle.split["test"]})[:2]
    bundle.split["test"] = [s for s in bundle.split["test"] if s.rsplit("_slice_", 1)[0] in volumes]
    dataset = make_dataset(cfg, bundle, "test", train=False)
    torch.manual_seed(0)
    model = dualseg.create_model("unet", in_channels=1, num_classes=4, channels=(4, 8))
    s = evaluate_dataset(model, dataset, cfg.eval, CPU, InputSpec(resize=(64, 64)))
    assert s["classes"] == ["background", "RV", "Myo", "LV"] and s["foreground_classes"] == ["RV", "Myo", "LV"]
    assert [v["name"] for v in s["per_volume"]] == volumes
    assert sum(v["n_slices"] for v in s["per_volume"]) == s["n_images"] == len(bundle.split["test"])
    for v in s["per_volume"]:
        rows = [r for r in s["per_image"] if r["name"].startswith(v["name"] + "_slice_")]
        assert len(rows) == v["n_slices"]
        for cls in ("RV", "Myo", "LV"):
            assert v["counts"][cls]["tp"] == sum(r["counts"][cls]["tp"] for r in rows)
            assert v["counts"][cls]["fn"] == sum(r["counts"][cls]["fn"] for r in rows)
    assert s["n_volumes"] == 2 and all(0 <= x["mean"]["dice"] <= 1 for x in s["per_volume"])
