"""Self-describing model packages, and one loader for packages, run directories and checkpoints.

A package is a folder with ``model.safetensors`` (the weights, safetensors format: no pickle, no code) and
``model.json``: the model's registry name and options, input channels, classes and their mask encoding, the input
normalisation and scale, resize, the size divisor and the sliding-window settings -- everything prediction needs,
so a package predicts without the run directory it came from::

    dualseg export runs/try --format package -o packages/isbi_unet
    model = dualseg.load_model("packages/isbi_unet")          # nn.Module in eval mode
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dualseg.data.descriptions import DatasetDescription, description_from_dict, description_to_dict
from dualseg.errors import DualsegError
from dualseg.version import __version__

PACKAGE_FORMAT = "dualseg-model"
PACKAGE_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"


@dataclass
class InferenceModel:
    """A model in eval mode with everything needed to feed it new images and write its outputs."""

    model: nn.Module
    description: DatasetDescription
    normalize: str = "zscore"
    resize: list[int] | None = None
    input_scale: float = 1.0
    input_mode: str = "area"  # how the input is downsampled when input_scale < 1 (data.sr.interpolation)
    roi_size: list[int] | None = None
    overlap: float = 0.5
    precision: str = "auto"
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``model.json`` of a package holding this model."""
        model = self.model
        return {
            "format": PACKAGE_FORMAT,
            "format_version": PACKAGE_VERSION,
            "dualseg_version": __version__,
            "model": {
                "name": self.info.get("model_name", type(model).__name__),
                "args": self.info.get("model_args", {}),
                "in_channels": model.in_channels,
                "num_classes": model.num_classes,
                "size_divisor": int(getattr(model, "size_divisor", 1)),
                "outputs": "seg = logits (N, num_classes, H', W'); num_classes 1 = sigmoid, else softmax",
            },
            "classes": list(self.description.class_names),
            "description": description_to_dict(self.description),
            "input": {
                "channels": model.in_channels,
                "normalize": self.normalize,
                "resize": self.resize,
                "input_scale": self.input_scale,
                "input_mode": self.input_mode,
            },
            "prediction": {"roi_size": self.roi_size, "overlap": self.overlap, "precision": self.precision},
            "source": {k: self.info[k] for k in ("checkpoint", "epoch") if k in self.info},
            "training_config": self.info.get("config"),
        }


def is_package(path: str | Path) -> bool:
    """A folder holding either package file (so that a package missing the other one gets a clear error)."""
    path = Path(path)
    if path.is_file():
        return path.name == CONFIG_FILE
    return (path / CONFIG_FILE).is_file() or (path / WEIGHTS_FILE).is_file()


def _from_run(path: str | Path, which: str, device: torch.device | str) -> InferenceModel:
    from dualseg.data.build import input_mode, input_scale
    from dualseg.inference.loading import load_trained

    trained = load_trained(path, which, device)
    cfg = trained.config
    info = {
        "model_name": cfg.model.name,
        "model_args": cfg.model.args,
        "checkpoint": str(trained.checkpoint),
        "epoch": trained.epoch,
        "config": cfg.to_dict(),
    }
    return InferenceModel(
        trained.model, trained.description, normalize=cfg.data.normalize, resize=cfg.data.resize,
        input_scale=input_scale(cfg), input_mode=input_mode(cfg), roi_size=cfg.eval.roi_size, overlap=cfg.eval.overlap,
        precision=cfg.train.precision, source=str(trained.checkpoint), info=info,
    )


def _stored_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors file's header (nothing is read into memory)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except (SafetensorError, OSError, RuntimeError) as e:
        raise DualsegError(f"cannot load weights {weights}: {str(e).splitlines()[0][:160]}; re-export the "
                           "package") from e


def _from_package(path: str | Path, device: torch.device | str) -> InferenceModel:
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
    from dualseg.inference.loading import build_fitting

    try:
        meta = json.loads(config_file.read_text())
        if meta.get("format") != PACKAGE_FORMAT:
            raise DualsegError(f"{config_file} is not a dualseg model package (format {meta.get('format')!r})")
        spec, inputs, pred = meta["model"], meta["input"], meta["prediction"]
        if not isinstance(spec["args"], dict) or not isinstance(spec["name"], str):
            raise TypeError("model.name must be a string and model.args a mapping")
        description = description_from_dict(meta["description"])
        shapes = _stored_shapes(weights)
        model = build_fitting(spec["name"], shapes, weights, in_channels=spec["in_channels"],
                              num_classes=spec["num_classes"], **spec["args"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError, ValueError) as e:
        raise DualsegError(f"{config_file} is malformed ({type(e).__name__}: {str(e)[:160]}); re-export the "
                           "package") from e
    try:
        missing, unexpected = load_safetensors(model, str(weights), strict=False)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise DualsegError(f"cannot load weights {weights}: {str(e).splitlines()[0]}; re-export the package") from e
    if missing or unexpected:
        raise DualsegError(
            f"{weights} does not fit model '{spec['name']}' (missing {list(missing)[:3]}, unexpected "
            f"{list(unexpected)[:3]}); the package's files do not belong together"
        )
    model.to(device, memory_format=torch.channels_last).eval()  # NHWC, training's default layout
    info = {"model_name": spec["name"], "model_args": spec["args"], **meta.get("source", {}),
            "config": meta.get("training_config")}
    return InferenceModel(
        model, description, normalize=inputs["normalize"], resize=inputs.get("resize"),
        input_scale=float(inputs.get("input_scale", 1.0)), input_mode=inputs.get("input_mode", "area"),
        roi_size=pred.get("roi_size"),
        overlap=float(pred.get("overlap", 0.5)), precision=pred.get("precision", "auto"), source=str(folder),
        info=info,
    )


def load_inference_model(path: str | Path, which: str = "best", device: torch.device | str = "cpu") -> InferenceModel:
    """A package folder (or its ``model.json``), a run directory or a checkpoint file -> :class:`InferenceModel`.
    ``which`` (``best``/``last``) picks the checkpoint of a run directory."""
    if is_package(path):
        return _from_package(path, device)
    return _from_run(path, which, device)


def save_package(loaded: InferenceModel, out_dir: str | Path) -> Path:
    """Write ``OUT_DIR/model.safetensors`` and ``OUT_DIR/model.json``; return the folder."""
    from safetensors.torch import save_model as save_safetensors

    from dualseg.safety.atomic import atomic_target, atomic_write_text

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DualsegError(f"{out} is a file; a package is a folder: give a folder path with -o")
    meta = loaded.to_json()
    try:
        text = json.dumps(meta, indent=1) + "\n"
    except TypeError as e:
        raise DualsegError(
            f"the model's settings cannot be written as JSON ({e}); use plain values in model.args"
        ) from e
    with atomic_target(out / WEIGHTS_FILE) as tmp:
        save_safetensors(loaded.model, str(tmp), metadata={"format": PACKAGE_FORMAT, "model": meta["model"]["name"]})
    atomic_write_text(out / CONFIG_FILE, text)
    return out


def load_model(path: str | Path, device: torch.device | str = "cpu", which: str = "best") -> nn.Module:
    """A trained model in eval mode from a package folder (``dualseg export --format package``), a run directory
    or a checkpoint file. ``model(x)["seg"]`` = logits; preprocessing settings: :func:`load_inference_model`."""
    return load_inference_model(path, which, device).model
