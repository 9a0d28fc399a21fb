"""Model cost benchmark: parameters, FLOPs/MACs (eval and train mode), latency, training throughput, peak memory.

    from dualseg.benchmark import benchmark_model
    benchmark_model("unet", input_size=(256, 256))

FLOPs come from PyTorch's own ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per
multiply-add of matrix multiplications, convolutions (incl. transposed) and attention; element-wise operations,
normalisation, pooling and interpolation are not counted. MACs are FLOPs / 2, the unit most papers report.
Also home of ``machine()`` / ``machine_tag()``, which the scripts in ``benchmarks/`` use to file their results.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from dualseg.errors import DualsegError
from dualseg.runtime import autocast, cpu_has_native_bf16, resolve_device, resolve_precision

FLOPS_NOTE = (
    "FLOPs counted by torch.utils.flop_counter.FlopCounterMode for ONE image (batch 1): 2 FLOPs per multiply-add "
    "of matmul/convolution/attention (element-wise ops, norms, pooling, interpolation not counted); "
    "GMACs = GFLOPs / 2 (the unit most papers report as 'FLOPs')"
)


# --- the machine ------------------------------------------------------------------------------------------------
def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``, else 'unknown'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_kind() -> str:
    """The CPU's vector instruction set as torch dispatches on it (``AVX512``, ``AVX2``, ...), with ``+amx`` where
    it has AMX tiles and ``+bf16`` where it computes bf16 with AVX512-BF16 only (e.g. AMD Zen 4): machines of one
    model name differ in this, and bf16 runs about 3x (AMX) or 1.2-1.7x (AVX512-BF16) faster than fp32 there."""
    capability = torch.backends.cpu.get_cpu_capability()
    if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        return capability + "+amx"
    return capability + ("+bf16" if cpu_has_native_bf16() else "")


def machine() -> dict[str, Any]:
    """CPU (model and kind), torch threads, GPU, torch and Python versions, and the automatic precision."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_name(),
        "cpu_kind": cpu_kind(),
        "cores": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "precision": str(resolve_precision("auto", torch.device("cuda" if gpu else "cpu"))),
    }


def machine_tag(info: dict[str, Any]) -> str:
    """Results folder name: the GPU name (lower case, dashes); ``cpu-<threads>core`` on CPUs with AMX (the machine
    of the first committed results, whose records carry no ``cpu_kind``), ``cpu-<threads>core-<kind>`` (e.g.
    ``cpu-2core-avx512``, ``cpu-1core-avx512-bf16``) on the others, so figures of different CPU kinds never share
    a folder."""
    if info["gpu"]:
        return info["gpu"].lower().replace(" ", "-")
    kind = info.get("cpu_kind", "")
    suffix = "" if not kind or kind.endswith("+amx") else "-" + kind.lower().replace("+", "-")
    return f"cpu-{info['cores']}core{suffix}"


def git_commit(cwd: str | Path) -> str:
    """Short hash of the checkout a benchmark ran from ('' outside git), recorded beside its figures."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=cwd)
    return out.stdout.strip()


def write_result(results_dir: str | Path, info: dict[str, Any], name: str, record: dict[str, Any]) -> Path:
    """Write ``results_dir/<machine tag>/<name>.json`` (and print it); return the path."""
    out = Path(results_dir) / machine_tag(info) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1) + "\n"
    out.write_text(text)
    print(text, end="")
    return out


def describe_device(device: torch.device) -> str:
    """'cpu: <model name> (<N> threads)' or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {cpu_name()} ({torch.get_num_threads()} threads)"


# --- FLOPs --------------------------------------------------------------------------------------------------------
def _outputs(out: Any) -> list[torch.Tensor]:
    """The floating-point tensors of a model output (a dict as dualseg models return, a tensor, or a sequence)."""
    if isinstance(out, torch.Tensor):
        items: Iterable[Any] = [out]
    elif isinstance(out, dict):
        items = out.values()
    elif isinstance(out, Sequence):
        items = out
    else:
        raise DualsegError(f"benchmark: cannot read a model output of type {type(out).__name__}")
    return [t for t in items if isinstance(t, torch.Tensor) and t.is_floating_point()]


def dummy_loss(out: Any) -> torch.Tensor:
    """Sum over all outputs of their mean: touches every output stream (segmentation, super-resolution, aux)."""
    tensors = _outputs(out)
    if not tensors:
        raise DualsegError("benchmark: the model returned no floating-point output to back-propagate")
    return sum((t.float().mean() for t in tensors), torch.zeros((), device=tensors[0].device))


# torch's counter has formulas for the CUDA attention kernels but none for the fused CPU kernel that
# scaled_dot_product_attention dispatches to on the CPU, which it would count as 0 FLOPs (EFEN's skips and
# the DRFL transformer use it). The CPU kernel does the same arithmetic, so torch's own counts apply.
def _cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward(grad_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape)


CPU_ATTENTION_FLOPS = {
    getattr(torch.ops.aten, name): formula
    for name, formula in (
        ("_scaled_dot_product_flash_attention_for_cpu", _cpu_attention),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", _cpu_attention_backward),
    )
    if hasattr(torch.ops.aten, name)
}


def count_flops(model: nn.Module, x: torch.Tensor, train: bool = False, backward: bool = False) -> int:
    """FLOPs of one forward (and, with ``backward``, the backward) pass of ``model`` on ``x``, as torch counts them.

    ``train=False``: eval mode under ``torch.no_grad``. ``train=True``: train mode (dual-stream models run their
    extra streams), with gradients; ``backward=True`` adds the backward pass of ``dummy_loss``. The model's
    train/eval mode is restored afterwards; parameter gradients are cleared. Counts are for the whole batch of ``x``.
    """
    if backward and not train:
        raise ValueError("count_flops: backward=True needs train=True")
    was_training = model.training
    model.train(train)
    try:
        counter = FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)
        grad = torch.enable_grad() if train else torch.no_grad()
        with counter, grad:
            out = model(x)
            if backward:
                dummy_loss(out).backward()
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)


# --- memory -------------------------------------------------------------------------------------------------------
def _release_cpu_memory() -> None:
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_cpu_peak() -> bool:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0: /proc/self/clear_refs); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


class _PeakMemory:
    """Peak memory of a code block: CUDA ``max_memory_allocated`` (absolute) or the increase of the CPU peak RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset_ok = True

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _release_cpu_memory()
            self.reset_ok = _reset_cpu_peak()
            self.start = _cpu_peak_mb()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mb = max(0.0, _cpu_peak_mb() - self.start)


# --- timing -------------------------------------------------------------------------------------------------------
def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def benchmark_model(
    name: str,
    input_size: tuple[int, int] = (256, 256),
    batch: int = 1,
    in_channels: int | None = None,
    num_classes: int = 2,
    device: str | torch.device = "cpu",
    amp: bool = False,
    compile: bool = False,
    channels_last: bool = False,
    model_args: dict[str, Any] | None = None,
    warmup: int = 2,
    repeats: int = 5,
) -> dict[str, Any]:
    """Measure a registered model: parameters, FLOPs/MACs, eval latency, training throughput and peak memory.

    ``gflops``/``gmacs`` are for one image in eval mode, ``gflops_train``/``gmacs_train`` for one image in train
    mode (dual-stream models run extra streams while training), ``gflops_train_step`` for forward + backward of
    one image in train mode. ``latency_ms`` is the median eval forward time at ``batch`` over ``repeats`` runs after
    ``warmup``; ``train_images_per_s`` comes from full SGD steps (forward, dummy loss, backward, step) at
    ``train_batch`` (= ``batch``, at least 2 for models with BatchNorm). Raises DualsegError for an unknown model,
    a missing GPU, or an input size the model cannot take (the model's own message).
    """
    from dualseg.models import create_model

    height, width = (int(v) for v in input_size)
    if height < 1 or width < 1:
        raise DualsegError(f"input size must be positive, got {height}x{width}")
    if batch < 1 or repeats < 1 or warmup < 0:
        raise DualsegError(f"need batch >= 1, repeats >= 1, warmup >= 0; got {batch}, {repeats}, {warmup}")
    model_args = dict(model_args or {})
    for key in ("in_channels", "num_classes"):
        if key in model_args:
            raise DualsegError(f"pass {key} as its own argument (--{key.replace('_', '-')}), not in model_args")
    in_channels = 1 if in_channels is None else int(in_channels)
    dev = resolve_device(device)
    dtype = resolve_precision("auto", dev) if amp else None

    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name, in_channels=in_channels, num_classes=num_classes, **model_args)
    model.to(dev, memory_format=layout)
    check = getattr(model, "check_input", None)
    if callable(check):  # the model's own error for a size it cannot take, before any work
        check(torch.empty(1, in_channels, height, width, device="meta"))
    params = sum(p.numel() for p in model.parameters())
    params_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    runner: nn.Module = model
    compile_s: float | None = None
    if compile:
        runner = torch.compile(model)
        compile_s = 0.0

    # eval latency and memory
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_channels, height, width, generator=gen).to(dev, memory_format=layout)
    model.eval()

    def forward() -> None:
        with torch.no_grad(), autocast(dev, dtype):
            runner(x)

    with _PeakMemory(dev) as mem_eval:
        if compile:
            compile_s += _timed(forward, dev)  # first call compiles
        for _ in range(warmup):
            forward()
        times = [_timed(forward, dev) for _ in range(repeats)]

    # training throughput and memory
    train_batch = max(batch, 2) if _has_batchnorm(model) else batch
    xt = torch.randn(train_batch, in_channels, height, width, generator=gen).to(dev, memory_format=layout)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(dev, dtype):
            loss = dummy_loss(runner(xt))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    with _PeakMemory(dev) as mem_train:
        if compile:
            compile_s += _timed(step, dev)  # train mode with gradients compiles another graph
        for _ in range(warmup):
            step()
        step_times = [_timed(step, dev) for _ in range(repeats)]
    optimizer.zero_grad(set_to_none=True)

    # FLOPs (on the eager model; counts do not depend on dtype): eval for one image, train on two images / 2 so
    # BatchNorm after global pooling (ASPP) works in train mode; every counted op is linear in the batch.
    flops = count_flops(model, x[:1], train=False)
    x2 = torch.randn(2, in_channels, height, width, generator=gen).to(dev, memory_format=layout)
    flops_train = count_flops(model, x2, train=True) / 2
    flops_train_step = count_flops(model, x2, train=True, backward=True) / 2
    model.eval()

    if dev.type == "cuda":
        memory_note = "torch.cuda.max_memory_allocated during the phase (absolute: weights + activations [+ grads])"
    else:
        memory_note = "increase of the process's peak RSS (resource.getrusage ru_maxrss) over the phase"
        if mem_eval.reset_ok:
            memory_note += ", peak reset to the current RSS first (/proc/self/clear_refs)"
        else:
            memory_note += "; the peak could not be reset, so it is only a lower bound"
        memory_note += "; weights allocated before the phase are not included"

    latency = statistics.median(times) * 1e3
    step_median = statistics.median(step_times)
    return {
        "model": name,
        "model_args": model_args,
        "input_size": [height, width],
        "in_channels": in_channels,
        "num_classes": num_classes,
        "batch": batch,
        "train_batch": train_batch,
        "device": describe_device(dev),
        "torch": torch.__version__,
        "amp": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "channels_last": channels_last,
        "amp_requested": amp,
        "compile": compile,
        "compile_s": round(compile_s, 2) if compile_s is not None else None,
        "params": params,
        "params_trainable": params_trainable,
        "flops": flops,
        "gflops": flops / 1e9,
        "gmacs": flops / 1e9 / 2,
        "gflops_train": flops_train / 1e9,
        "gmacs_train": flops_train / 1e9 / 2,
        "gflops_train_step": flops_train_step / 1e9,
        "flops_note": FLOPS_NOTE,
        "latency_ms": round(latency, 3),
        "latency_ms_std": round(statistics.pstdev(times) * 1e3, 3),
        "train_step_ms": round(step_median * 1e3, 3),
        "train_images_per_s": round(train_batch / step_median, 3),
        "peak_memory_mb": {"eval": round(mem_eval.mb, 1), "train": round(mem_train.mb, 1)},
        "memory_note": memory_note,
        "warmup": warmup,
        "repeats": repeats,
    }
