"""``dualseg plan``: the planning rules on hand-made fingerprints with a stand-in probe (numbers worked out by
hand), the YAML round trip, the bad-input errors, and plan -> train on the embedded ISBI 2012 sample."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import yaml

import dualseg
from dualseg.cli import main
from dualseg.config import load_config
from dualseg.errors import DualsegError
from dualseg.planning.plan import plan_config as _plan_config
from dualseg.planning.plan import validation_images
from dualseg.planning.probe import Probe, activation_bytes
from dualseg.planning.render import render_plan


def fingerprint(height: int = 584, width: int = 565, fractions: tuple[float, ...] = (0.9, 0.1), channels: int = 3,
                background: int | None = 0, area: float = 400.0, pairs: int = 20) -> dict:
    names = [f"c{i}" for i in range(len(fractions))]
    spread = {"min": area, "median": area, "max": area}
    return {
        "dataset_folder": "/data/x", "pairs": pairs, "channels": channels, "kind": "2D images",
        "groups": None, "volumes": None, "fov_masks": None, "bit_depth": ["uint8"],
        "description": {"name": "generic", "channels": channels, "class_names": names, "background": background},
        "image_sizes": {"counts": [{"width": width, "height": height, "images": pairs}],
                        "height": {"min": height, "median": height, "max": height},
                        "width": {"min": width, "median": width, "max": width}},
        "intensity": {"all": [{"mean": 0.5, "std": 0.2, "percentiles": {"0.5": 0.0, "50": 0.5, "99.5": 1.0}}],
                      "foreground": None},
        "classes": [{"index": i, "name": n, "fraction": f, "pixels": 1, "images": 1}
                    for i, (n, f) in enumerate(zip(names, fractions))],
        "objects": {"per_class": [{"index": i, "name": n, "components": 1, "area": spread}
                                  for i, n in enumerate(names) if i != background]},
    }


def plan_config(*args, count_validation=lambda cfg: 4, **kwargs):
    """``plan_config`` with 4 validation images (a fifth of the stand-in fingerprints' 20 pairs): no folder to split."""
    return _plan_config(*args, count_validation=count_validation, **kwargs)


class StandIn:
    """A probe that measures nothing: fixed step and validation times; records what it was asked."""

    def __init__(self, step_s: float = 0.5, eval_s: float = 0.25, mib: float = 100.0) -> None:
        self.step_s, self.eval_s, self.mib, self.calls = step_s, eval_s, mib, []

    def __call__(self, model, args, in_channels, num_classes, patch, batch, eval_size, device) -> Probe:
        self.calls.append({"model": model, "patch": patch, "batch": batch, "eval_size": eval_size})
        mib = self.mib * patch[0] * patch[1] / 256**2  # activations grow with the patch area
        return Probe(self.step_s, self.eval_s, mib, "cpu", "fp32", 2)


def test_patch_network_batch_and_steps_follow_the_rules() -> None:
    probe = StandIn(step_s=0.5, eval_s=0.25)
    plan = plan_config(fingerprint(), "/data/x", "unet", budget_min=10, device="cpu", measure=probe)
    cfg = plan.config
    assert cfg["data"]["patch_size"] == [256, 256]  # 584x565 capped at 256 on a CPU, a multiple of 16
    assert cfg["model"]["args"]["channels"] == [16, 32, 64, 128, 256]  # 256 / 2**4 = 16 px bottleneck
    assert cfg["train"]["batch_size"] == 4 and probe.calls[-1]["batch"] == 4
    assert probe.calls[-1]["eval_size"] == [584, 565]
    # 20 pairs -> 4 validation images x 0.25 s = 1 s; iterations so that 1 s <= 10 % of an epoch: 9 s / 0.5 = 18
    assert cfg["train"]["iters_per_epoch"] == 18
    epoch_s = 18 * 0.5 + 1.0
    assert cfg["train"]["epochs"] == int(600 * 0.95 // epoch_s) == 57
    assert cfg["train"]["time_limit_min"] == pytest.approx(10 - (0.5 + 1.0) / 60, abs=1e-3)  # less a step + val
    assert cfg["train"]["schedule"]["horizon"] == "time"
    assert cfg["data"]["augment"]["intensity"] == 0.3  # RGB photographs: stronger colour/contrast
    assert plan.validated().train.batch_size == 4


def test_validation_time_comes_from_the_split_the_config_makes() -> None:
    sample = dualseg.sample_data_path("isbi2012")  # the 30 slices of ISBI 2012
    seen = []

    def count(cfg):
        seen.append(cfg.data.split.protocol)
        return validation_images(cfg)

    plan = _plan_config(fingerprint(pairs=30), sample, "unet", 10, "cpu", ["data.split.protocol=drfl_clean"],
                        measure=StandIn(step_s=0.5, eval_s=0.25), count_validation=count)
    assert seen == ["drfl_clean"]  # the overrides shape the split that is counted
    # drfl_clean: 10 copies of each slice, a tenth of the 30 slices (3) validate -> 30 images x 0.25 s = 7.5 s;
    # 7.5 s <= 10 % of an epoch: 67.5 s / 0.5 = 135 iterations (a fifth of the pairs would have given 6 images, 27)
    assert cfg_iters(plan) == 135
    plain = _plan_config(fingerprint(pairs=30), sample, "unet", 10, "cpu", measure=StandIn(step_s=0.5, eval_s=0.25))
    n_plain = validation_images(plain.validated())
    assert 0 < n_plain < 30 and cfg_iters(plain) == max(10, math.ceil(n_plain * 0.25 * 9 / 0.5))


def cfg_iters(plan) -> int:
    return plan.config["train"]["iters_per_epoch"]


def test_rare_classes_get_weights_and_dice_follows_the_background() -> None:
    fp = fingerprint(fractions=(0.985, 0.01, 0.005), channels=1)
    loss = plan_config(fp, "/d", "unet", 5, "cpu", measure=StandIn()).config["loss"]
    # 1 % is not rare (< 1 %); sqrt(0.985 / 0.005) = 14.04, capped at 10
    assert loss[0]["kwargs"]["class_weights"] == [1.0, 1.0, 10.0]
    fp = fingerprint(fractions=(0.3, 0.695, 0.005), channels=1)
    loss = plan_config(fp, "/d", "unet", 5, "cpu", measure=StandIn()).config["loss"]
    assert loss[0]["kwargs"]["class_weights"] == [1.0, 1.0, 7.75]  # sqrt(0.3 / 0.005) = 7.746
    assert loss[1] == {"name": "dice", "weight": 1.0, "kwargs": {"include_background": False}}
    every = plan_config(fingerprint(background=None, channels=1), "/d", "unet", 5, "cpu", measure=StandIn())
    assert every.config["loss"][1]["kwargs"]["include_background"] is True
    assert "kwargs" not in every.config["loss"][0]


def test_memory_shrinks_batch_then_patch(monkeypatch) -> None:
    monkeypatch.setattr("dualseg.planning.plan._free_memory_mib", lambda device: 4 * 300.0)  # a quarter: 300 MiB
    plan = plan_config(fingerprint(), "/d", "unet", 5, "cpu", measure=StandIn(mib=100.0))
    assert plan.config["train"]["batch_size"] == 3 and plan.config["data"]["patch_size"] == [256, 256]
    probe = StandIn(mib=200.0)
    plan = plan_config(fingerprint(), "/d", "unet", 5, "cpu", measure=probe)
    assert plan.config["data"]["patch_size"] == [128, 128]  # 1 patch of 200 MiB fitted; 6 of 50 MiB do
    assert plan.config["train"]["batch_size"] == 4
    assert [(c["patch"], c["batch"]) for c in probe.calls] == [([256, 256], 4), ([128, 128], 2), ([128, 128], 4)]


def test_models_with_an_sr_stream_or_a_fixed_size() -> None:
    probe = StandIn()
    ds2f = plan_config(fingerprint(), "/d", "ds2f_unet", 5, "cpu", measure=probe).config
    assert ds2f["data"]["sr"] == {"mode": "downsample", "scale": 2, "mask_at": "hr", "interpolation": "bicubic"}
    assert ds2f["model"]["args"]["upscale"] == 2
    assert probe.calls[0]["patch"] == [128, 128] and probe.calls[0]["eval_size"] == [292, 282]  # LR inputs
    assert {t.get("output") for t in ds2f["loss"]} >= {"sr", "proxy_sr", "proxy_seg"}
    danie = plan_config(fingerprint(), "/d", "danie_s", 5, "cpu", measure=StandIn()).config
    assert danie["model"]["args"]["img_size"] == 256 and danie["data"]["patch_size"] == [256, 256]


def test_render_is_the_config_with_reasons() -> None:
    fp = fingerprint()
    plan = plan_config(fp, "/d", "unet", 5, "cpu", ["train.optimizer.lr=0.003"], measure=StandIn())
    text = render_plan(plan, fp, "test CPU")
    assert yaml.safe_load(text) == plan.config
    assert plan.config["train"]["optimizer"]["lr"] == 0.003
    line = next(x for x in text.splitlines() if x.strip().startswith("patch_size:"))
    assert "median image 565x584" in line and "# " in line


def test_bad_input_names_the_fix() -> None:
    with pytest.raises(DualsegError, match=r"too small.*use --budget-min \d"):
        plan_config(fingerprint(), "/d", "unet", 0.05, "cpu", measure=StandIn(step_s=1.0))
    with pytest.raises(DualsegError, match="must be positive"):
        plan_config(fingerprint(), "/d", "unet", -1, "cpu", measure=StandIn())
    with pytest.raises(DualsegError, match="did you mean"):
        plan_config(fingerprint(), "/d", "unet", 5, "cpu", ["train.epoch=3"], measure=StandIn())
    with pytest.raises(DualsegError, match="unknown model"):
        plan_config(fingerprint(), "/d", "unetx", 5, "cpu", measure=StandIn())


def test_activation_bytes_counts_module_outputs_by_hand() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU())
    # two leaf modules, each output 1 x 4 x 8 x 8 float32 = 1024 bytes
    assert activation_bytes(model, torch.zeros(1, 1, 8, 8)) == 2 * 4 * 8 * 8 * 4


def test_plan_cli_writes_a_config_train_reads(tmp_path) -> None:
    sample = dualseg.sample_data_path("isbi2012")
    out = tmp_path / "plan.yaml"
    assert main(["plan", str(sample), "--budget-min", "5", "--no-progress", "-o", str(out), "--set",
                 "train.optimizer.lr=0.002"]) == 0
    assert out.with_suffix(".fingerprint.json").is_file()
    cfg = load_config(out)
    assert cfg.data.patch_size == [256, 256] and cfg.train.optimizer.lr == 0.002 and cfg.train.time_limit_min < 5
    assert "# median image 512x512" in out.read_text()


def test_a_folder_of_no_known_dataset_plans_a_config_that_reads_it(tmp_path) -> None:
    sample = dualseg.sample_data_path("isbi2012")
    folder = tmp_path / "my_cells"  # a name no description has: classes and channels are inferred from the files
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
        for i in range(10):
            shutil.copy(sample / sub / f"{i}.png", folder / sub / f"{i}.png")
    out = tmp_path / "plan.yaml"
    assert main(["plan", str(folder), "--budget-min", "5", "--no-progress", "-o", str(out)]) == 0
    cfg = load_config(out)
    assert cfg.data.dataset == "auto"
    assert validation_images(cfg) > 0  # the folder resolves again, as training will read it


def test_train_a_folder_needs_a_budget_and_a_budget_needs_a_folder(tmp_path, capsys) -> None:
    sample = dualseg.sample_data_path("isbi2012")
    assert main(["train", str(sample)]) == 2
    assert "give --budget-min" in capsys.readouterr().err
    assert main(["train", "configs/isbi2012/unet.yaml", "--budget-min", "3"]) == 2
    assert "train.time_limit_min" in capsys.readouterr().err


@pytest.mark.sample
def test_train_a_folder_plans_and_keeps_the_plan(tmp_path) -> None:
    run = tmp_path / "run"
    sample = dualseg.sample_data_path("isbi2012")
    assert main(["train", str(sample), "--budget-min", "1", "--no-progress", "--set", f"output_dir={run}",
                 "--set", "train.threads=2"]) == 0  # (how close to the budget it ends: benchmarks/plan.py)
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "fingerprint.json").is_file()
    planned, used = load_config(run / "plan.yaml"), load_config(run / "config.yaml")
    assert planned.to_dict() == used.to_dict()  # the commented plan is the config that trained


def test_files_that_state_their_spacing_plan_the_spacing_proxy() -> None:
    stated = {"source": "files", "images_stating": 20, "mm": {"min": 0.005, "median": 0.005, "max": 0.005}}
    plan = plan_config({**fingerprint(), "spacing": stated}, "/d", "unet", 5, "cpu", measure=StandIn())
    assert plan.config["data"]["scale_proxy"] == "spacing" and "0.005 mm" in plan.reasons["data.scale_proxy"]
    for partial in ({**stated, "images_stating": 19}, {**stated, "source": "description", "images_stating": 0}, None):
        plain = plan_config({**fingerprint(), "spacing": partial}, "/d", "unet", 5, "cpu", measure=StandIn())
        assert "scale_proxy" not in plain.config["data"]  # some files silent, or only the description: auto
