"""``dualseg plan DATA [--model M] [--budget-min N] [-o plan.yaml] [--set KEY=VALUE ...]``: measure a dataset folder
(its fingerprint) and plan a training config that fits the budget on this machine; ``--fingerprint-only`` stops
after the fingerprint. A folder with problems exits 1 with check-data's messages."""

from __future__ import annotations

import argparse
from pathlib import Path

from dualseg.cli.options import add_overwrite
from dualseg.errors import DualsegError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="plan a training config for a dataset folder and a time budget")
    p.add_argument("data", metavar="DATA", help="dataset folder with images/ and masks/")
    p.add_argument("--dataset", default="auto", help="dataset description name (default: by folder name/inferred)")
    p.add_argument("--model", default="unet", help="registered model to plan for (default: unet)")
    p.add_argument("--budget-min", type=float, help="training time on this machine, in minutes")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where training will run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a planned key, as in dualseg train")
    p.add_argument("--fingerprint-only", action="store_true", help="stop after the fingerprint")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="plan.yaml (the fingerprint goes beside it as .fingerprint.json), or with --fingerprint-only "
                        "FILE.json (default: print)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overwrite(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.planning.fingerprint import DataProblems, fingerprint, render_fingerprint, save_fingerprint

    try:
        fp = fingerprint(args.data, args.dataset, progress=not args.no_progress)
    except DataProblems as e:
        print(e.report.render())
        return 1
    if args.fingerprint_only:
        print(render_fingerprint(fp))
        if args.output:
            save_fingerprint(fp, args.output, args.data, overwrite=args.overwrite)
            print(f"wrote {args.output}")
        return 0
    text = plan_text(fp, args)
    if not args.output:
        print(text, end="")
        return 0
    out = Path(args.output)
    if out.suffix not in (".yaml", ".yml"):
        raise DualsegError(f"{out}: a plan is a YAML config; give a file name ending in .yaml")
    write_plan(text, fp, out, args.data, args.overwrite)
    print(f"wrote {out} and {out.with_suffix('.fingerprint.json')}; train with: dualseg train {out}")
    return 0


def plan_text(fp: dict, args: argparse.Namespace) -> str:
    from dualseg.benchmark import machine
    from dualseg.planning.plan import plan_config
    from dualseg.planning.render import render_plan

    plan = plan_config(fp, Path(args.data).resolve(), args.model, args.budget_min, args.device, args.overrides)
    info = machine()
    return render_plan(plan, fp, f"{info.get('cpu', 'this machine')} ({info.get('cpu_kind', '')})")


def write_plan(text: str, fp: dict, out: Path, data: str, overwrite: bool) -> None:
    from dualseg.planning.fingerprint import save_fingerprint
    from dualseg.safety.atomic import atomic_write_text
    from dualseg.safety.outputs import check_separate, writing_into

    check_separate(out, [data])
    save_fingerprint(fp, out.with_suffix(".fingerprint.json"), data, overwrite=overwrite)
    with writing_into(out.parent, overwrite=overwrite):
        atomic_write_text(out, text)
