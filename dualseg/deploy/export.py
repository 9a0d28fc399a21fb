"""Export a trained model's eval-mode segmentation output to ONNX or TorchScript, checked against PyTorch.

The exported graph maps the MODEL input (normalised image, ``(N, in_channels, H, W)``, H and W divisible by
``size_divisor``, already scaled by ``input_scale``) to the ``"seg"`` logits; reading, normalising, padding and
resizing stay outside the graph and are described in the ``.json`` written beside the file (the package's
``model.json``). ONNX uses the ``torch.export`` based exporter with dynamic batch, height and width. TorchScript
is a trace; when the model computes sizes in Python (DS2F) the trace only holds for the traced size, which the
check finds and the ``.json`` records (``"dynamic_size": false``).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from dualseg.deploy.package import package_json, save_package
from dualseg.errors import DualsegError
from dualseg.inference.loading import LoadedModel
from dualseg.safety.atomic import atomic_write_text
from dualseg.safety.outputs import check_separate, claim, writing_into

FORMATS = ("package", "onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


class SegOutput(nn.Module):
    """The model's eval-mode ``"seg"`` logits as a plain tensor output (what exporters and runtimes take)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)["seg"]


def example_size(loaded: LoadedModel, size: Sequence[int] | None = None) -> tuple[int, int]:
    """The traced input size: ``size`` if given (checked), else the sliding-window size, the training resize, or
    256x256, rounded up to the model's divisor."""
    divisor = int(getattr(loaded.model, "size_divisor", 1))
    chosen = size or loaded.spec.roi_size or loaded.spec.resize or (256, 256)
    if len(chosen) != 2 or any(int(s) < 1 for s in chosen):
        raise DualsegError(f"input size must be two positive integers H W, got {list(chosen)}")
    if size is not None and any(int(s) % divisor for s in size):
        raise DualsegError(f"input size {list(size)} must be divisible by the model's size divisor {divisor}")
    return tuple(-(-int(s) // divisor) * divisor for s in chosen)  # type: ignore[return-value]


def _root_message(error: BaseException) -> str:
    """The first line of the innermost cause of an exporter's error, without terminal colour codes."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines() if ln.strip()]
    return f"{type(error).__name__}: {lines[0][:300]}" if lines else type(error).__name__


def _check(run: Callable[[Tensor], np.ndarray], reference: nn.Module, x: Tensor) -> float:
    """Largest absolute difference between the exported model's output and PyTorch's on ``x``."""
    expected = reference(x).float().numpy()
    got = run(x)
    if got.shape != expected.shape:
        raise ValueError(f"output shape {got.shape} != PyTorch's {expected.shape}")
    return float(np.abs(got - expected).max())


def _second_size(h: int, w: int, divisor: int) -> tuple[int, int]:
    """Another valid size (different height and width) for checking that the export is not tied to one size."""
    return h + divisor * max(1, 32 // divisor), w + 2 * divisor * max(1, 32 // divisor)


def export_model(
    loaded: LoadedModel, fmt: str, out: str | Path, size: Sequence[int] | None = None, atol: float = 1e-3,
    overwrite: bool = False,
) -> dict:
    """Write ``out`` (a package folder, an ``.onnx`` or a TorchScript ``.pt`` file, and for the last two a sidecar
    ``<out>.json``); return the sidecar record (format, input size, dynamic size, largest difference from PyTorch).
    Raises a DualsegError naming the model when it cannot be exported or its export does not match PyTorch.
    ``out`` follows :mod:`dualseg.safety.outputs` (never the model it comes from; a file dualseg did not write is
    replaced only with ``overwrite``)."""
    if fmt not in FORMATS:
        raise DualsegError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if fmt == "package" and out.exists() and not out.is_dir():
        raise DualsegError(f"{out} is a file; a package is a folder: give a folder path with -o")
    check_separate(out, [loaded.source] if loaded.source else [])
    with writing_into(out if fmt == "package" else out.parent, overwrite=overwrite):
        return _export(loaded, fmt, out, size, atol)


def _export(loaded: LoadedModel, fmt: str, out: Path, size: Sequence[int] | None, atol: float) -> dict:
    if fmt == "package":
        save_package(loaded, out)
        return {"format": "package", "path": str(out)}
    name = loaded.info.get("model_name", type(loaded.model).__name__)
    model = loaded.model.float().eval().cpu()
    wrapped = SegOutput(model).eval()
    h, w = example_size(loaded, size)
    divisor = int(getattr(model, "size_divisor", 1))
    torch.manual_seed(0)
    x = torch.randn(1, model.in_channels, h, w)
    same_size = -x  # a second input of the traced size: catches traces that baked in value-dependent branches
    other = torch.randn(2, model.in_channels, *_second_size(h, w, divisor))
    claim(out)  # the exporters write ``out`` themselves
    try:
        with torch.no_grad():
            wrapped(x)  # a model that cannot even run at this size fails here with its own message
            run = _export_onnx(wrapped, x, out) if fmt == "onnx" else _export_torchscript(wrapped, x, out)
            diff = max(_check(run, wrapped, x), _check(run, wrapped, same_size))
    except DualsegError:
        raise
    except Exception as e:  # noqa: BLE001 - exporters fail in many ways; the innermost message is what matters
        out.unlink(missing_ok=True)
        other_formats = ", ".join(f for f in FORMATS if f != fmt)
        raise DualsegError(
            f"cannot export model '{name}' to {fmt}: {_root_message(e)} (try --format {other_formats})"
        ) from e
    if diff > atol:
        out.unlink(missing_ok=True)
        raise DualsegError(
            f"exported {fmt} model '{name}' differs from PyTorch by {diff:.2e} (> {atol}) at the traced size "
            "(control flow that depends on the input's values?); nothing written"
        )
    try:
        with torch.no_grad():
            dynamic = _check(run, wrapped, other) <= atol
    except Exception:  # noqa: BLE001 - any failure at a second size means the export is tied to its traced size
        dynamic = False
    record = {
        "format": fmt,
        "path": str(out),
        "input": {"name": "image", "layout": "NCHW", "size": [h, w] if not dynamic else None,
                  "traced_size": [h, w], "dynamic_size": dynamic, "size_divisor": divisor},
        "output": {"name": "seg", "meaning": "logits (N, num_classes, H', W'); 1 class = sigmoid, else softmax"},
        "max_abs_diff_vs_pytorch": diff,
        "package": package_json(loaded),
    }
    atomic_write_text(f"{out}.json", json.dumps(record, indent=1) + "\n")
    return record


def _export_onnx(wrapped: nn.Module, x: Tensor, out: Path) -> Callable[[Tensor], np.ndarray]:
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs onnx and onnxscript)
        import onnxruntime as ort
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise DualsegError(f"ONNX export needs onnx, onnxscript and onnxruntime ({e}); install them with "
                           "pip install 'dualseg[export]'") from None
    from torch.export import Dim

    dims = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (x,), str(out), input_names=["image"], output_names=["seg"], dynamo=True,
                          dynamic_shapes={"x": dims}, external_data=False, verbose=False)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda t: session.run(None, {"image": t.numpy()})[0]


def _export_torchscript(wrapped: nn.Module, x: Tensor, out: Path) -> Callable[[Tensor], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapped, x, check_trace=False)
        traced.save(str(out))
        loaded = torch.jit.load(str(out))
    return lambda t: loaded(t).float().numpy()
