"""``dualseg report RUN_DIR [RUN_DIR ...] -o OUT``: tables, p-values, curves and case overlays as Markdown + HTML."""

from __future__ import annotations

import argparse

from dualseg.cli.options import add_overwrite


def _list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="Markdown + HTML report comparing evaluated runs (tables, p-values, figures)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs evaluated with 'dualseg evaluate --split'")
    p.add_argument("-o", "--output", default="report", help="output folder (default: report/)")
    p.add_argument("--split", default="test", help="the evaluated split to report (default: test)")
    p.add_argument("--metrics", default=None, help="comma-separated metrics to show (default: all in the summaries)")
    p.add_argument("--names", default=None, help="comma-separated method names, one per run (default: config name)")
    p.add_argument("--reference", default=None, help="the method the others are tested against (default: first)")
    p.add_argument("--cases", type=int, default=2, help="best and worst images drawn per run (0: no overlays)")
    p.add_argument("--case-metric", default=None, help="metric that ranks the cases (default: the first shown)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="checkpoint for the overlays")
    p.add_argument("--data", default=None, help="dataset folder, if it moved since training")
    p.add_argument("--max-side", type=int, default=384, help="largest side of each overlay panel in pixels")
    p.add_argument("--title", default=None)
    add_overwrite(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.errors import DualsegError
    from dualseg.report.build import build_report

    if args.cases < 0:
        raise DualsegError(f"--cases must be >= 0, got {args.cases}")
    files = build_report(args.run_dirs, args.output, split=args.split, metrics=_list(args.metrics),
                         names=_list(args.names), cases=args.cases, case_metric=args.case_metric,
                         reference=args.reference, checkpoint=args.checkpoint, data_root=args.data,
                         max_side=args.max_side or None, title=args.title, overwrite=args.overwrite)
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return 0
