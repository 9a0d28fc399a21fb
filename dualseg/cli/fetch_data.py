"""``dualseg fetch-data NAME --dest DIR``: get a public dataset in dualseg's layout (``--list`` shows them)."""

from __future__ import annotations

import argparse

from dualseg.errors import DualsegError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fetch-data",
        help="download, verify, convert and check a public dataset",
        description="Download a public dataset (resumable, checksum-verified), convert it to images/ + masks/ and "
        "run check-data on it; nothing is installed unless every step succeeds.",
    )
    p.add_argument("name", nargs="?", help="dataset name (see --list)")
    p.add_argument("--dest", help="dataset folder to create (must not exist or be empty)")
    p.add_argument("--list", action="store_true", help="list the known datasets and exit")
    p.add_argument("--from", dest="sources", action="append", default=[], metavar="PATH",
                   help="use a local archive or folder instead of downloading (repeatable; for datasets behind a "
                   "registration)")
    p.add_argument("--url", action="append", default=[], metavar="FILE=URL",
                   help="download FILE from a mirror URL instead (checksums still apply; repeatable)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="accept files without a published checksum (their SHA-256 is printed)")
    p.set_defaults(run=run)


def render_list() -> str:
    from dualseg.data.fetch_catalog import CATALOG

    rows = [f"{'name':<14} {'download':<22} {'checksum':<10} {'size':<9} title"]
    for e in sorted(CATALOG.values(), key=lambda e: e.name):
        how = "registration/--from" if not e.resources else "direct"
        rows.append(f"{e.name:<14} {how:<22} {e.checksum_status:<13} {e.size:<9} {e.title}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from dualseg.data.fetch import fetch_dataset

    if args.list:
        print(render_list())
        return 0
    if not args.name or not args.dest:
        raise DualsegError("give a dataset name and --dest DIR (or --list to see the datasets)")
    urls = {}
    for item in args.url:
        file, sep, url = item.partition("=")
        if not sep or not url:
            raise DualsegError(f"--url expects FILE=URL, got '{item}'")
        urls[file] = url
    result = fetch_dataset(args.name, args.dest, args.sources, urls, args.allow_unverified)
    print(result.report.render())
    print(f"installed {result.dest} ({'; '.join(result.notes)})")
    return 0
