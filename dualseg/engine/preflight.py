"""Checks made before a training run writes anything.

``check_run_inputs`` reads only file headers (cheap even for thousands of files): empty files, sizes that differ
between an image and its mask, a model built for another channel count, and input sizes the model cannot take
(stride divisibility, or a model's own rule such as DRFL's bottleneck) with the nearest valid sizes. File contents
(truncated data, NaN pixels, undeclared mask values) are checked when a file is first read, with the same one-line
errors; ``dualseg check-data`` reads everything up front.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from dualseg.data.scan import Sample
from dualseg.errors import DualsegError
from dualseg.safety.limits import check_pixels

MAX_LISTED = 3


def header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from the file header (refused above the pixel limit); None when the header cannot tell (the full
    reader decides then)."""
    if path.stat().st_size == 0:
        raise DualsegError(f"empty (0-byte) file: {path}; replace it with a valid image or remove the pair")
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception:  # noqa: BLE001 - undecodable headers are reported by the full reader with its own message
        return None
    check_pixels(path, width, height)
    return height, width


def check_headers(samples: Sequence[Sample]) -> dict[Path, tuple[int, int]]:
    """Sizes of the images by header; raise on empty files and image/mask/FOV size mismatches (first few named)."""
    problems: list[str] = []
    sizes: dict[Path, tuple[int, int]] = {}
    for s in samples:
        try:
            size = header_size(s.image)
            for other in (s.mask, s.fov):
                if other is None:
                    continue
                other_size = header_size(other)
                if size and other_size and other_size != size:
                    problems.append(
                        f"size mismatch: {s.image} is {size[1]}x{size[0]} but {other} is "
                        f"{other_size[1]}x{other_size[0]} (W x H)"
                    )
        except DualsegError as e:
            problems.append(str(e))
            continue
        if size:
            sizes[s.image] = size
    if problems:
        more = f" (+{len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise DualsegError("; ".join(problems[:MAX_LISTED]) + more + "; run 'dualseg check-data' for every problem")
    return sizes


def check_model_input(
    model: torch.nn.Module, channels: int, sizes: dict[str, tuple[int, int]], scale: float = 1.0
) -> None:
    """Raise when the model cannot take ``channels`` or one of ``sizes`` (named by its key or file), scaled."""
    in_channels = getattr(model, "in_channels", channels)
    if in_channels != channels:
        raise DualsegError(
            f"model.in_channels={in_channels} but the images give {channels} channel(s); "
            f"remove model.in_channels or set it to {channels}"
        )
    check = getattr(model, "check_input", None)
    if check is None:
        return
    for where, (h, w) in sizes.items():
        try:
            check(torch.empty(1, channels, int(h * scale), int(w * scale), device="meta"))
        except DualsegError as e:
            raise DualsegError(f"{where}: {e}") from e


def check_run_inputs(cfg, model: torch.nn.Module, bundle, input_scale: float) -> None:
    """Header checks of every sample and the model's input rules for the training input size of ``cfg``, scaled
    by the run's ``input_scale`` (its :class:`~dualseg.inference.spec.InputSpec`)."""
    sizes = check_headers(list(bundle.samples.values()))
    if cfg.data.patch_size:
        wanted = {f"data.patch_size={list(cfg.data.patch_size)}": tuple(cfg.data.patch_size)}
    elif cfg.data.resize:
        wanted = {f"data.resize={list(cfg.data.resize)}": tuple(cfg.data.resize)}
    else:  # whole images: each distinct training size, named by its first file
        wanted = {}
        for s in bundle.subset("train"):
            size = sizes.get(s.image)
            if size and size not in wanted.values():
                wanted[f"{s.image} (whole image; set data.patch_size or data.resize)"] = size
    check_model_input(model, bundle.description.channels, wanted, input_scale)


def _flatten(data: object, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def changed_keys(old, new, limit: int = 4) -> str:
    """'train.epochs: 1 -> 2, ...': the config keys whose values differ between two configs."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    diffs = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    more = f", +{len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more
