"""``dualseg check-data PATH``: exit 0 when the folder is clean, 1 when it found problems (each named)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-data", help="read every file of a dataset folder and report problems")
    p.add_argument("path", help="dataset folder with images/ and masks/")
    p.add_argument("--dataset", default="auto", help="dataset description name (default: by folder name/inferred)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.data.check import check_data

    report = check_data(args.path, args.dataset)
    print(report.render())
    return 1 if report.problems else 0
