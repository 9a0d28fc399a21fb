"""Build what benchmarks/gpu/campaign.sh needs on a machine without network: wheels and the four datasets.

    python benchmarks/gpu/prepare.py --python-version 3.12            # full data + wheels -> benchmarks/gpu/carry/
    python benchmarks/gpu/prepare.py --smoke --no-wheels --out DIR    # tiny subsets (the --smoke run and CI)

``carry/wheels/``: the packages the target lacks, downloaded with ``pip download`` for the target's Python
(``--python-version``, manylinux x86_64) without their dependencies: MONAI (pure Python), matplotlib (curves) and
tensorboard (the trainer's event files) with the dependencies of these two that are not already there (see
``WHEELS``). ``carry/data-<k>/``: the datasets in one ``tar.xz`` cut into parts of at most ``--part-mib`` MiB, each
in its own folder so each can be carried in its own call (the device call carries 64 MiB in all);
``campaign.sh`` joins and unpacks them into ``benchmarks/gpu/data/``. ``--smoke`` writes the subsets as plain
folders instead (``--out``/data/<name>), ready for ``campaign.sh --smoke --data DIR``.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASETS = ("isbi2012", "drive", "cvc_clinicdb", "acdc")
# Packages the target's Python lacks (it has torch 2.11, torchvision 0.26, timm, scikit-image and so numpy,
# scipy, pillow, tifffile, packaging; safetensors, tqdm, pyyaml): MONAI, matplotlib and tensorboard, and their
# dependencies outside that list.
WHEELS = ("monai", "matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil",
          "six", "tensorboard", "tensorboard-data-server", "absl-py", "grpcio", "markdown", "protobuf", "werkzeug",
          "markupsafe", "setuptools")


def download_wheels(out: Path, python_version: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform={p}" for p in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--implementation=cp",
                    f"--python-version={python_version}", *platforms, "-d", str(out), *WHEELS], check=True)


def smoke_stems(name: str, root: Path) -> list[str]:
    """A few stems per dataset that keep its default split non-empty (train, val and test)."""
    stems = sorted(p.stem for p in (root / "images").iterdir())
    if name == "isbi2012":
        return stems[:10]
    if name == "drive":
        return [s for s in stems if s.endswith("_training")][:4] + [s for s in stems if s.endswith("_test")][:2]
    if name == "cvc_clinicdb":
        from dualseg.data.datasets.cvc_clinicdb import cvc_sequence

        by_seq: dict[str, list[str]] = {}
        for s in sorted(stems, key=int):
            by_seq.setdefault(cvc_sequence(s), []).append(s)
        return [s for seq in sorted(by_seq)[:6] for s in by_seq[seq][:2]]
    rows = list(csv.DictReader((root / "split.csv").open()))
    train = sorted({r["stem"].split("_")[0] for r in rows if r["split"] == "train"})[:3]
    test = sorted({r["stem"].split("_")[0] for r in rows if r["split"] != "train"})[:1]
    keep = [r["stem"] for r in rows if r["stem"].split("_")[0] in train + test and
            int(r["stem"].rsplit("_", 1)[1]) <= 3]
    return keep


def copy_subset(name: str, root: Path, dest: Path, stems: list[str] | None) -> None:
    """Copy the dataset (or the given stems) with its side files (split.csv limited to the kept stems)."""
    keep = None if stems is None else set(stems)
    for item in root.iterdir():
        target = dest / item.name
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            for f in item.iterdir():
                if keep is None or f.stem in keep:
                    shutil.copy2(f, target / f.name)
        elif item.name == "split.csv" and keep is not None:
            rows = [r for r in csv.DictReader(item.open()) if r["stem"] in keep]
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            target.write_text(buf.getvalue())
        else:
            shutil.copy2(item, target)


def pack_parts(data_dir: Path, out: Path, part_mib: int) -> list[Path]:
    """One tar.xz of ``data_dir``'s datasets cut into ``out/data-<k>/part`` files of at most ``part_mib`` MiB."""
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "data.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        for name in DATASETS:
            tar.add(data_dir / name, arcname=name)
    parts, size = [], part_mib * 2**20
    with archive.open("rb") as f:
        k = 0
        while chunk := f.read(size):
            part = out / f"data-{k}" / "part"
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(chunk)
            parts.append(part)
            k += 1
    archive.unlink()
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(HERE.parents[1].parent / "shared" / "data"),
                        help="folder holding isbi2012/, drive/, cvc_clinicdb/, acdc/ (default ../shared/data)")
    parser.add_argument("--out", default=str(HERE / "carry"))
    parser.add_argument("--smoke", action="store_true", help="tiny subsets as plain folders in OUT/data")
    parser.add_argument("--no-wheels", action="store_true")
    parser.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="the target's Python (python3 -V there); default: this one's")
    parser.add_argument("--part-mib", type=int, default=60)
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    missing = [n for n in DATASETS if not (data / n / "images").is_dir()]
    if missing:
        print(f"error: {data} lacks {', '.join(missing)}; pass --data DIR", file=sys.stderr)
        return 2
    if out.exists():
        shutil.rmtree(out)
    staging = out / "data"
    for name in DATASETS:
        stems = smoke_stems(name, data / name) if args.smoke else None
        if stems is None:
            shutil.copytree(data / name, staging / name)
        else:
            copy_subset(name, data / name, staging / name, stems)
    if not args.smoke:
        parts = pack_parts(staging, out, args.part_mib)
        shutil.rmtree(staging)
        print("data parts (carry each in its own call): " + ", ".join(
            f"{p.parent.relative_to(out.parent)} {p.stat().st_size / 2**20:.1f} MiB" for p in parts))
    if not args.no_wheels:
        download_wheels(out / "wheels", args.python_version)
        size = sum(f.stat().st_size for f in (out / "wheels").iterdir()) / 2**20
        print(f"wheels for Python {args.python_version}: {out / 'wheels'} ({size:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
