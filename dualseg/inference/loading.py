"""Load a trained model from a checkpoint file or a run directory, without the training data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dualseg.checkpoint import load_checkpoint
from dualseg.config import Config, config_from_dict
from dualseg.data.descriptions import DatasetDescription, description_from_dict
from dualseg.errors import DualsegError, short_repr
from dualseg.models import create_model


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


def build_fitting(name: str, shapes: dict[str, tuple[int, ...]], source: str | Path, **options) -> torch.nn.Module:
    """Build model ``name`` with ``options`` only once its shapes are known to fit ``shapes`` (the stored weights'
    names and shapes): the model is first built on the meta device (no memory), so edited options (a width of
    999999) are refused before anything is allocated. Tied parameters may be stored under one of their names."""
    try:
        with torch.device("meta"):
            skeleton = create_model(name, **options)
    except DualsegError:
        raise
    except Exception as e:  # noqa: BLE001 - bad stored options fail inside a model's constructor in many ways
        raise DualsegError(f"{source}: model {short_repr(name, 40)} cannot be built from its stored options "
                           f"({type(e).__name__}: {str(e)[:120]})") from e
    groups: dict[int, list[str]] = {}
    for key, tensor in skeleton.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(key)
    expected = {key: tuple(t.shape) for key, t in skeleton.state_dict().items()}
    problems = [f"{k}: stored {list(shape)}, model {list(expected[k])}" for k, shape in shapes.items()
                if k in expected and tuple(shape) != expected[k]]
    problems += [f"unexpected {k}" for k in shapes if k not in expected]
    problems += [f"missing {keys[0]}" for keys in groups.values() if not any(k in shapes for k in keys)]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DualsegError(f"{source} does not fit model {short_repr(name, 40)} with the stored options "
                           f"({'; '.join(problems[:3])}{more}); the files do not belong together")
    del skeleton
    return create_model(name, **options)


def load_trained(path: str | Path, which: str = "best", device: str | torch.device = "cpu") -> TrainedModel:
    ckpt_path = find_checkpoint(path, which)
    state = load_checkpoint(ckpt_path)
    cfg = config_from_dict(state["config"])
    weights = state["model"]
    if not isinstance(weights, dict) or not all(torch.is_tensor(t) for t in weights.values()):
        raise DualsegError(f"{ckpt_path} is not a dualseg checkpoint (its 'model' entry holds no weights)")
    model = build_fitting(state["model_name"], {k: tuple(t.shape) for k, t in weights.items()}, ckpt_path,
                          in_channels=state["in_channels"], num_classes=state["num_classes"], **cfg.model.args)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise DualsegError(f"{ckpt_path}: weights do not fit model '{state['model_name']}': {str(e)[:200]}") from e
    # the layout the run trained and validated in (NHWC by default), so evaluation reproduces the in-training
    # validation; on this CPU NHWC evals 0.97-1.37x as fast as NCHW (benchmarks/results/cpu-2core/layout.md)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.to(device, memory_format=layout).eval()
    return TrainedModel(model, cfg, description_from_dict(state["description"]), ckpt_path, state["trainer"]["epoch"])
