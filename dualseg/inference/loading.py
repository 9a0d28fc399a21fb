"""Load a trained model, with what is needed to feed it, from a run directory, a checkpoint file or a package.

A package is a folder with ``model.safetensors`` (the weights, safetensors format: no pickle, no code) and
``model.json`` (written by :mod:`dualseg.deploy.package`): the model's registry name and options, classes and
their mask encoding, and the :class:`~dualseg.inference.spec.InputSpec` (its ``input`` and ``prediction``
sections) -- everything prediction needs, so a package predicts without the run directory it came from::

    loaded = load_inference_model("packages/isbi_unet")   # or a run directory / checkpoint
    loaded.model, loaded.spec, loaded.description
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dualseg.checkpoint import load_checkpoint
from dualseg.config import Config, config_from_dict
from dualseg.data.descriptions import DatasetDescription, description_from_dict
from dualseg.errors import DualsegError, short_repr
from dualseg.inference.spec import InputSpec
from dualseg.models import create_model

PACKAGE_FORMAT = "dualseg-model"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"


@dataclass
class LoadedModel:
    """A model in eval mode, in its spec's memory layout, with everything needed to feed it new images and
    write its outputs. ``config``: the training config when known (None for hand-made models); ``source``: the
    checkpoint or package it was read from; ``info``: ``model_name``, ``model_args``, ``checkpoint``, ``epoch``,
    ``config`` (the training config as a dict) as far as known."""

    model: nn.Module
    spec: InputSpec
    description: DatasetDescription
    config: Config | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def is_package(path: str | Path) -> bool:
    """A folder holding either package file (so that a package missing the other one gets a clear error)."""
    path = Path(path)
    if path.is_file():
        return path.name == CONFIG_FILE
    return (path / CONFIG_FILE).is_file() or (path / WEIGHTS_FILE).is_file()


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


def _from_checkpoint(path: str | Path, which: str, device: torch.device | str) -> LoadedModel:
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
    divisor = int(getattr(model, "size_divisor", 1))
    try:  # checkpoints older than the stored spec: the spec of their stored config
        spec = InputSpec.from_dict(state["input"]) if "input" in state else InputSpec.from_config(cfg, divisor)
    except (TypeError, ValueError) as e:
        raise DualsegError(f"{ckpt_path}: its stored input settings are malformed ({e}); retrain or re-save") from e
    # the layout the run trained and validated in (NHWC by default), so evaluation reproduces the in-training
    # validation; on this CPU NHWC evals 0.97-1.37x as fast as NCHW (benchmarks/results/cpu-2core/layout.md)
    model.to(device, memory_format=spec.memory_format).eval()
    info = {"model_name": cfg.model.name, "model_args": cfg.model.args, "checkpoint": str(ckpt_path),
            "epoch": state["trainer"]["epoch"], "config": cfg.to_dict()}
    return LoadedModel(model, spec, description_from_dict(state["description"]), cfg, str(ckpt_path), info)


def _stored_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors file's header (nothing is read into memory)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except (SafetensorError, OSError, RuntimeError) as e:
        raise DualsegError(f"cannot load weights {weights}: {str(e).splitlines()[0][:160]}; re-export the "
                           "package") from e


def _from_package(path: str | Path, device: torch.device | str) -> LoadedModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_model as load_safetensors

    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    weights, config_file = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    for needed in (config_file, weights):
        if not needed.is_file():
            raise DualsegError(
                f"package {folder} has no {needed.name}; a package needs {CONFIG_FILE} and {WEIGHTS_FILE} "
                "(re-create it with: dualseg export RUN_DIR --format package -o OUT)"
            )
    try:
        meta = json.loads(config_file.read_text())
        if meta.get("format") != PACKAGE_FORMAT:
            raise DualsegError(f"{config_file} is not a dualseg model package (format {meta.get('format')!r})")
        arch = meta["model"]
        if not isinstance(arch["args"], dict) or not isinstance(arch["name"], str):
            raise TypeError("model.name must be a string and model.args a mapping")
        spec = InputSpec.from_dict({**meta["prediction"], **meta["input"]},
                                   size_divisor=arch.get("size_divisor", 1))
        description = description_from_dict(meta["description"])
        shapes = _stored_shapes(weights)
        model = build_fitting(arch["name"], shapes, weights, in_channels=arch["in_channels"],
                              num_classes=arch["num_classes"], **arch["args"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError, ValueError) as e:
        raise DualsegError(f"{config_file} is malformed ({type(e).__name__}: {str(e)[:160]}); re-export the "
                           "package") from e
    try:
        missing, unexpected = load_safetensors(model, str(weights), strict=False)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise DualsegError(f"cannot load weights {weights}: {str(e).splitlines()[0]}; re-export the package") from e
    if missing or unexpected:
        raise DualsegError(
            f"{weights} does not fit model '{arch['name']}' (missing {list(missing)[:3]}, unexpected "
            f"{list(unexpected)[:3]}); the package's files do not belong together"
        )
    model.to(device, memory_format=spec.memory_format).eval()  # packages without the key: NHWC, as before
    training = meta.get("training_config")
    info = {"model_name": arch["name"], "model_args": arch["args"], **meta.get("source", {}), "config": training}
    try:  # a training config another dualseg version wrote may not validate here; the package predicts without it
        config = config_from_dict(training) if isinstance(training, dict) else None
    except (DualsegError, TypeError, ValueError):
        config = None
    return LoadedModel(model, spec, description, config, str(folder), info)


def load_inference_model(path: str | Path, which: str = "best", device: torch.device | str = "cpu") -> LoadedModel:
    """A package folder (or its ``model.json``), a run directory or a checkpoint file -> :class:`LoadedModel`.
    ``which`` (``best``/``last``) picks the checkpoint of a run directory."""
    if is_package(path):
        return _from_package(path, device)
    return _from_checkpoint(path, which, device)


def load_model(path: str | Path, device: torch.device | str = "cpu", which: str = "best") -> nn.Module:
    """A trained model in eval mode from a package folder (``dualseg export --format package``), a run directory
    or a checkpoint file. ``model(x)["seg"]`` = logits; preprocessing settings: :func:`load_inference_model`."""
    return load_inference_model(path, which, device).model
