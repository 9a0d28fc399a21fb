"""``dualseg compare RUN_A RUN_B``: paired Wilcoxon and t-tests per class and metric, matched by image name."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="paired significance tests (Wilcoxon, t-test) between two evaluated runs")
    p.add_argument("run_a", metavar="RUN_A", help="the reference run")
    p.add_argument("run_b", metavar="RUN_B", help="the run tested against it")
    p.add_argument("--split", default="test", help="the evaluated split (default: test)")
    p.add_argument("--metrics", default=None, help="comma-separated metrics (default: all both runs have)")
    p.add_argument("--names", default=None, help="two comma-separated names for the runs")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from dualseg.cli.report import _list
    from dualseg.report.runs import load_runs, select_metrics
    from dualseg.report.statistics import compare_runs
    from dualseg.report.tables import significance_table

    run_a, run_b = load_runs([args.run_a, args.run_b], args.split, _list(args.names))
    metrics = select_metrics([run_a, run_b], _list(args.metrics))
    rows = compare_runs(run_a, run_b, metrics)
    if args.json:
        print(json.dumps({"a": run_a.name, "b": run_b.name, "split": args.split, "rows": rows}, indent=1))
    else:
        print(significance_table(run_a.name, run_b.name, rows).to_markdown())
    return 0
