"""Run directories for inference tests, written directly (a checkpoint of a freshly built model, no training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dualseg
from dualseg.checkpoint import save_checkpoint
from dualseg.config import config_from_dict
from dualseg.data.descriptions import BINARY_0_255, DatasetDescription, description_to_dict

TOY = DatasetDescription("toy", channels=1, class_names=("background", "object"), mask_values=BINARY_0_255)


def write_run(folder: Path, model_name: str, args: dict, in_channels: int = 1, num_classes: int = 2,
              config: dict | None = None, seed: int = 0) -> Path:
    """A run directory whose ``checkpoints/best.pt`` holds a randomly initialised ``model_name`` (fp32)."""
    torch.manual_seed(seed)
    model = dualseg.create_model(model_name, in_channels=in_channels, num_classes=num_classes, **args)
    with torch.no_grad():  # non-trivial batch-norm statistics, so that eval mode differs from train mode
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
    cfg = config_from_dict({"model": {"name": model_name, "args": args}, "train": {"precision": "fp32"},
                            **(config or {})})
    state = {
        "format": "dualseg-checkpoint-1", "model": model.state_dict(), "trainer": {"epoch": 3},
        "config": cfg.to_dict(), "model_name": model_name, "in_channels": in_channels, "num_classes": num_classes,
        "description": description_to_dict(TOY),
    }
    save_checkpoint(state, folder / "checkpoints" / "best.pt")
    return folder


@pytest.fixture
def make_run():
    """``write_run`` for tests that need runs of other models."""
    return write_run


@pytest.fixture
def unet_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "unet_run", "unet", {"channels": [4, 8, 16]})


@pytest.fixture
def ds2f_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "ds2f_run", "ds2f_unet", {"channels": [4, 8, 16]},
                     config={"data": {"sr": {"mode": "downsample", "scale": 2}}})
