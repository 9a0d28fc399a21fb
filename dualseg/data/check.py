"""``dualseg check-data``: read every file of a dataset folder and report what it holds and every problem."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dualseg.data.descriptions import DatasetDescription
from dualseg.data.io import read_image, read_mask, to_float
from dualseg.data.layouts import scan_folder
from dualseg.data.resolve import resolve_description
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar


@dataclass
class DataReport:
    root: Path
    description: DatasetDescription | None
    pairs: int = 0
    sizes: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    mask_values: Counter = field(default_factory=Counter)  # value -> number of masks holding it
    fov: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        d = self.description
        lines = [f"dataset folder: {self.root}"]
        if d is not None:
            lines.append(f"description: {d.name} ({d.channels} channel(s); classes: {', '.join(d.class_names)})")
        lines.append(f"image/mask pairs: {self.pairs}" + (f" ({self.fov} with FOV masks)" if self.fov else ""))
        lines.append("image formats: " + ", ".join(f"{k} x{v}" for k, v in self.formats.most_common()))
        sizes = ", ".join(f"{w}x{h} x{n}" for (h, w), n in self.sizes.most_common(5))
        more = f" (+{len(self.sizes) - 5} more sizes)" if len(self.sizes) > 5 else ""
        lines.append(f"image sizes (W x H): {sizes}{more}")
        values = ", ".join(f"{v} (in {n} masks)" for v, n in sorted(self.mask_values.items())[:20])
        lines.append(f"mask values: {values}")
        lines += [f"note: {n}" for n in self.notes]
        if self.problems:
            lines.append(f"PROBLEMS ({len(self.problems)}):")
            lines += [f"  - {p}" for p in self.problems]
        else:
            lines.append("no problems found")
        return "\n".join(lines)


def check_data(root: str | Path, dataset: str = "auto", progress: bool = True) -> DataReport:
    """Read every image, mask and FOV mask; collect sizes, formats, mask values and problems (with file names)."""
    root = Path(root)
    scan = scan_folder(root, "images", "masks")  # layout errors (missing folders) raise at once
    try:
        description = resolve_description(root, dataset)
    except DualsegError as e:
        description = None
        scan.problems.append(f"cannot infer the classes: {e}")
    if description is not None and description.fov_dir:
        scan = scan_folder(root, description.image_dir, description.mask_dir, description.fov_dir)
    report = DataReport(root, description, problems=list(scan.problems))
    binary_01 = 0
    for s in progress_bar(scan.samples, desc="check-data", enabled=progress, unit="pair"):
        try:
            image = read_image(s.image, s.extra_channels)
            to_float(image, s.image)
            mask = read_mask(s.mask)
        except DualsegError as e:
            report.problems.append(str(e))
            continue
        report.pairs += 1
        report.formats[f"{s.image.suffix.lower()[1:]} {image.dtype} {image.shape[-1]}ch"] += 1
        report.sizes[image.shape[:2]] += 1
        if mask.shape != image.shape[:2]:
            report.problems.append(
                f"size mismatch: {s.image} is {image.shape[1]}x{image.shape[0]} but {s.mask} is "
                f"{mask.shape[1]}x{mask.shape[0]} (W x H)"
            )
            continue
        values = np.unique(mask)
        report.mask_values.update(values.tolist())
        if description is not None:
            try:
                description.encode_mask(mask, s.mask)
            except DualsegError as e:
                report.problems.append(str(e))
            if description.mask_values == {0: 0, 255: 1} and set(values.tolist()) <= {0, 1} and values.max() == 1:
                binary_01 += 1
        if s.fov is not None:
            try:
                fov = read_mask(s.fov)
            except DualsegError as e:
                report.problems.append(str(e))
                continue
            report.fov += 1
            if fov.shape != mask.shape:
                report.problems.append(f"size mismatch: FOV mask {s.fov} does not match {s.image}")
    if binary_01:
        report.notes.append(f"{binary_01} mask(s) use 0/1 instead of 0/255")
    return report
