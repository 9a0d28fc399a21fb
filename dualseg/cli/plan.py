"""``dualseg plan DATA --fingerprint-only``: measure a dataset folder (sizes, intensities, classes, objects,
groups); exit 1 with check-data's messages when the folder has problems. Planning beyond the fingerprint is not built
yet."""

from __future__ import annotations

import argparse

from dualseg.cli.options import add_overwrite
from dualseg.errors import DualsegError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="measure a dataset folder (its fingerprint) to plan a configuration")
    p.add_argument("data", metavar="DATA", help="dataset folder with images/ and masks/")
    p.add_argument("--dataset", default="auto", help="dataset description name (default: by folder name/inferred)")
    p.add_argument("--fingerprint-only", action="store_true", help="stop after the fingerprint (required for now)")
    p.add_argument("-o", "--output", metavar="FILE.json", help="write the fingerprint as JSON (default: summary only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overwrite(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.planning.fingerprint import DataProblems, fingerprint, render_fingerprint, save_fingerprint

    if not args.fingerprint_only:
        raise DualsegError("planning beyond the dataset fingerprint is not built yet; pass --fingerprint-only")
    try:
        fp = fingerprint(args.data, args.dataset, progress=not args.no_progress)
    except DataProblems as e:
        print(e.report.render())
        return 1
    print(render_fingerprint(fp))
    if args.output:
        save_fingerprint(fp, args.output, args.data, overwrite=args.overwrite)
        print(f"wrote {args.output}")
    return 0
