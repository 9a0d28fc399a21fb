"""Measure a planned network on this machine: the activation memory of one training image, the time of a real
training step (forward, backward, optimizer) and of one evaluation pass over a whole image."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dualseg.models import create_model
from dualseg.runtime import autocast, precision_name, resolve_device, resolve_precision


@dataclass(frozen=True)
class Probe:
    """What :func:`probe` measured (seconds, MiB) and where."""

    step_s: float  # one training step at the planned batch and patch
    eval_image_s: float  # one evaluation forward pass over an image of the eval size
    activation_mib: float  # activations kept for backward, per training image (sum of module outputs)
    device: str
    precision: str
    threads: int


def activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of every leaf module's output in one training-mode forward pass of ``x``: what autograd keeps for the
    backward pass (an estimate that ignores in-place reuse, so on the safe side)."""
    total = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, dict):
            output = list(output.values())
        for t in output if isinstance(output, (list, tuple)) else (output,):
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return total


def probe(model_name: str, model_args: dict[str, Any], in_channels: int, num_classes: int, patch: list[int],
          batch: int, eval_size: list[int], device: str = "auto", precision: str = "auto", steps: int = 3) -> Probe:
    """Build the planned model and time ``steps`` training steps (after one warm-up step) on random data of the
    planned shape, in the precision and memory layout training will use."""
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    model = create_model(model_name, in_channels=in_channels, num_classes=num_classes, **model_args)
    model.to(dev, memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(0)
    two = torch.randn(2, in_channels, *patch, generator=generator).to(dev)  # batch norm needs 2 in training
    per_image = activation_bytes(model, two) / 2
    x = torch.randn(batch, in_channels, *patch, generator=generator).to(dev, memory_format=torch.channels_last)
    labels = torch.randint(0, max(num_classes, 2), (batch, *patch), generator=generator).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with autocast(dev, dtype):
            logits = model(x)["seg"].float()
        loss = (F.binary_cross_entropy_with_logits(logits[:, 0], (labels > 0).float()) if num_classes == 1
                else F.cross_entropy(logits, labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:
            times.append(time.perf_counter() - start)
    model.eval()
    divisor = int(getattr(model, "size_divisor", 1))
    side = [-(-s // divisor) * divisor for s in eval_size]
    image = torch.randn(1, in_channels, *side, generator=generator).to(dev, memory_format=torch.channels_last)
    evals = []
    with torch.no_grad(), autocast(dev, dtype):
        for _ in range(2):
            start = time.perf_counter()
            model(image)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            evals.append(time.perf_counter() - start)
    return Probe(step_s=statistics.median(times), eval_image_s=min(evals), activation_mib=per_image / 2**20,
                 device=str(dev), precision=precision_name(dtype), threads=torch.get_num_threads())
