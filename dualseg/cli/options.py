"""Command-line options that several verbs share."""

from __future__ import annotations

import argparse


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: the output-folder rules (dualseg/safety/outputs.py) refuse to replace a file that dualseg
    did not write; this flag allows it."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files that dualseg did not write there")
