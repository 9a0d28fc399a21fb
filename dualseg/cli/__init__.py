"""The ``dualseg`` command line: one thin module per verb (parse, call the library, print)."""

from __future__ import annotations

import argparse
import sys
import traceback

from dualseg.cli import (
    benchmark,
    check_data,
    compare,
    convert_nnunet,
    cv,
    demo,
    evaluate,
    export,
    fetch_data,
    make_sr_targets,
    models,
    plan,
    predict,
    report,
    train,
    train_sr,
)
from dualseg.errors import DualsegError, describe_os_error, one_line

VERBS = (models, check_data, plan, train, evaluate, predict, export, demo, benchmark, train_sr, make_sr_targets,
         fetch_data, convert_nnunet, cv, compare, report)
EXIT_ERROR = 2


def version_text() -> str:
    import platform

    import torch

    from dualseg.version import __version__

    return f"dualseg {__version__} (torch {torch.__version__}, Python {platform.python_version()})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dualseg", description="2D medical image segmentation toolkit")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


# what to do after Ctrl-C, for the verbs whose work can be continued
INTERRUPT_HINTS = {
    "train": "; continue the run with the same command and --resume",
    "cv": "; run the same command again: finished members are kept and the interrupted one resumes",
    "fetch-data": "; run the same command again: the download resumes from its .part file",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except DualsegError as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:  # disk full, permission denied, a file in the way: the system's words, the path, the fix
        if args.debug:
            traceback.print_exc()
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"interrupted{INTERRUPT_HINTS.get(args.verb, '')}", file=sys.stderr)
        return 130
