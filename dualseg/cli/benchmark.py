"""``dualseg benchmark MODEL [--input-size HxW] [--batch N] [--device cpu|cuda] [--amp] [--compile]
[--channels-last] [--json]``: parameters, FLOPs/MACs (eval and train mode), latency, training throughput and
peak memory of one model."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from dualseg.errors import DualsegError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="measure a model: parameters, FLOPs/MACs, latency, throughput, memory")
    p.add_argument("model", help="registered model name (see `dualseg models`)")
    p.add_argument("--input-size", default="256x256", metavar="HxW", help="input size, e.g. 256x256 or 256 (square)")
    p.add_argument("--batch", type=int, default=1, help="batch size for latency and training throughput")
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--amp", action="store_true", help="autocast with the machine's automatic precision")
    p.add_argument("--compile", action="store_true", help="time a torch.compile'd model (compile time separate)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout for the model and its inputs")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object to stdout")
    p.add_argument("--model-args", default=None, metavar="JSON",
                   help='model options as a JSON object, e.g. \'{"channels": [16, 32, 64]}\'')
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    p.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    p.set_defaults(run=run)


def parse_input_size(text: str) -> tuple[int, int]:
    """'256x256' -> (256, 256); '256' -> (256, 256). DualsegError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise DualsegError(f"--input-size must be HxW or one side, e.g. 256x256 or 256; got {text!r}")
    h = int(m.group(1))
    return h, int(m.group(2)) if m.group(2) is not None else h


def parse_model_args(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DualsegError(f"--model-args is not valid JSON ({e.msg} at character {e.pos}): {text!r}") from e
    if not isinstance(value, dict):
        raise DualsegError(f'--model-args must be a JSON object such as \'{{"variant": "ss"}}\', got {text!r}')
    return value


def format_table(r: dict[str, Any]) -> str:
    h, w = r["input_size"]
    args = json.dumps(r["model_args"]) if r["model_args"] else "-"
    mem = r["peak_memory_mb"]
    rows = [
        ("model", f"{r['model']}  args {args}"),
        ("device", r["device"]),
        ("torch", r["torch"]),
        ("input", f"{r['in_channels']}x{h}x{w}, batch {r['batch']} (train batch {r['train_batch']}), "
                  f"{r['num_classes']} classes"),
        ("precision", r["amp"] or "fp32"),
        ("memory layout", "channels_last (NHWC)" if r["channels_last"] else "NCHW"),
        ("compiled", f"yes, compile {r['compile_s']:.1f} s" if r["compile"] else "no"),
        ("parameters", f"{r['params']:,} ({r['params'] / 1e6:.2f} M; trainable {r['params_trainable']:,})"),
        ("GMACs eval", f"{r['gmacs']:.3f}  (GFLOPs {r['gflops']:.3f})"),
        ("GMACs train", f"{r['gmacs_train']:.3f}  (GFLOPs {r['gflops_train']:.3f}; "
                        f"forward+backward GFLOPs {r['gflops_train_step']:.3f})"),
        ("latency", f"{r['latency_ms']:.2f} ms +- {r['latency_ms_std']:.2f} (eval forward, batch {r['batch']})"),
        ("training", f"{r['train_images_per_s']:.2f} images/s ({r['train_step_ms']:.1f} ms per step)"),
        ("peak memory", f"eval {mem['eval']:.1f} MB, train {mem['train']:.1f} MB"),
    ]
    lines = [f"{k:<12} {v}" for k, v in rows]
    lines += ["", f"note: {r['flops_note']}", f"memory: {r['memory_note']}"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    size = parse_input_size(args.input_size)
    model_args = parse_model_args(args.model_args)
    for flag, value, low, high in (("--batch", args.batch, 1, 65536), ("--repeats", args.repeats, 1, 10000),
                                   ("--warmup", args.warmup, 0, 10000), ("--in-channels", args.in_channels, 1, 4096),
                                   ("--num-classes", args.num_classes, 1, 65536)):
        if not low <= value <= high:
            raise DualsegError(f"{flag} must be in {low}..{high}, got {value}")

    from dualseg.benchmark import benchmark_model
    from dualseg.safety.limits import max_image_pixels, out_of_memory_hint

    limit = max_image_pixels()
    if size[0] * size[1] * args.batch > limit:
        raise DualsegError(f"--input-size {size[0]}x{size[1]} with --batch {args.batch} is "
                           f"{size[0] * size[1] * args.batch:,} pixels, more than the limit of {limit:,} "
                           "(DUALSEG_MAX_IMAGE_PIXELS); lower --input-size or --batch")

    if sys.stderr.isatty():  # progress for people; errors stay one line in logs and tests
        print(f"benchmarking {args.model} at {size[0]}x{size[1]} on {args.device} ...", file=sys.stderr)
    with out_of_memory_hint(f"benchmarking {args.model} at {size[0]}x{size[1]} (batch {args.batch})",
                            "--input-size or --batch"):
        result = benchmark_model(
            args.model, input_size=size, batch=args.batch, in_channels=args.in_channels, num_classes=args.num_classes,
            device=args.device, amp=args.amp, compile=args.compile, channels_last=args.channels_last,
            model_args=model_args, warmup=args.warmup, repeats=args.repeats,
        )
    if args.amp and result["amp"] is None:
        print("warning: --amp: no fast reduced precision on this device, measured in fp32", file=sys.stderr)
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0
