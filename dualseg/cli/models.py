"""``dualseg models``: the registered models with their parameter counts."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models with parameter counts")
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=2)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dualseg.models import create_model, list_models

    print(f"{'model':<24} {'parameters':>14}")
    for name in list_models():
        with torch.device("meta"):  # count without allocating or initialising weights
            model = create_model(name, in_channels=args.in_channels, num_classes=args.num_classes)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<24} {n:>14,}")
    return 0
