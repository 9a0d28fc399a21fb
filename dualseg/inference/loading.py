"""Load a trained model from a checkpoint file or a run directory, without the training data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

import dualseg
from dualseg.data.descriptions import DatasetDescription, description_from_dict
from dualseg.engine.checkpoint import load_checkpoint
from dualseg.engine.config import Config, config_from_dict
from dualseg.errors import DualsegError


@dataclass
class TrainedModel:
    model: torch.nn.Module
    config: Config
    description: DatasetDescription
    checkpoint: Path
    epoch: int


def find_checkpoint(path: str | Path, which: str = "best") -> Path:
    """A checkpoint file as given, or ``RUN_DIR/checkpoints/<which>.pt`` (falling back to last.pt)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DualsegError(f"no run directory or checkpoint at {path}")
    for name in (which, "last"):
        candidate = path / "checkpoints" / f"{name}.pt"
        if candidate.is_file():
            return candidate
    raise DualsegError(f"{path} holds no checkpoints/{which}.pt or last.pt; train first (dualseg train)")


def load_trained(path: str | Path, which: str = "best", device: str | torch.device = "cpu") -> TrainedModel:
    ckpt_path = find_checkpoint(path, which)
    state = load_checkpoint(ckpt_path)
    cfg = config_from_dict(state["config"])
    model = dualseg.create_model(
        state["model_name"], in_channels=state["in_channels"], num_classes=state["num_classes"], **cfg.model.args
    )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise DualsegError(f"{ckpt_path}: weights do not fit model '{state['model_name']}': {str(e)[:200]}") from e
    # the layout the run trained and validated in (NHWC by default), so evaluation reproduces the in-training
    # validation; on this CPU NHWC evals 0.97-1.37x as fast as NCHW (benchmarks/results/cpu-2core/layout.md)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.to(device, memory_format=layout).eval()
    return TrainedModel(model, cfg, description_from_dict(state["description"]), ckpt_path, state["trainer"]["epoch"])
