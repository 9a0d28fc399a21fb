"""Write self-describing model packages: ``model.safetensors`` (the weights) and ``model.json`` (see
:mod:`dualseg.inference.loading`, which reads them)::

    dualseg export runs/try --format package -o packages/isbi_unet
    model = dualseg.load_model("packages/isbi_unet")          # nn.Module in eval mode
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dualseg.data.descriptions import description_to_dict
from dualseg.errors import DualsegError
from dualseg.inference.loading import CONFIG_FILE, PACKAGE_FORMAT, WEIGHTS_FILE, LoadedModel
from dualseg.inference.spec import PREDICTION_KEYS
from dualseg.version import __version__

PACKAGE_VERSION = 1


def package_json(loaded: LoadedModel) -> dict[str, Any]:
    """The ``model.json`` of a package holding ``loaded``: the spec's prediction settings under ``prediction``,
    its size divisor under ``model`` (the model's own), the rest under ``input`` (the sections older dualseg
    versions read)."""
    model = loaded.model
    inputs = loaded.spec.to_dict()
    del inputs["size_divisor"]
    prediction = {key: inputs.pop(key) for key in PREDICTION_KEYS}
    return {
        "format": PACKAGE_FORMAT,
        "format_version": PACKAGE_VERSION,
        "dualseg_version": __version__,
        "model": {
            "name": loaded.info.get("model_name", type(model).__name__),
            "args": loaded.info.get("model_args", {}),
            "in_channels": model.in_channels,
            "num_classes": model.num_classes,
            "size_divisor": int(getattr(model, "size_divisor", 1)),
            "outputs": "seg = logits (N, num_classes, H', W'); num_classes 1 = sigmoid, else softmax",
        },
        "classes": list(loaded.description.class_names),
        "description": description_to_dict(loaded.description),
        "input": {"channels": model.in_channels, **inputs},
        "prediction": prediction,
        "source": {k: loaded.info[k] for k in ("checkpoint", "epoch") if k in loaded.info},
        "training_config": loaded.info.get("config"),
    }


def save_package(loaded: LoadedModel, out_dir: str | Path) -> Path:
    """Write ``OUT_DIR/model.safetensors`` and ``OUT_DIR/model.json``; return the folder."""
    from safetensors.torch import save_model as save_safetensors

    from dualseg.safety.atomic import atomic_target, atomic_write_text

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DualsegError(f"{out} is a file; a package is a folder: give a folder path with -o")
    meta = package_json(loaded)
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
