"""The dataset fingerprint (first step of ``dualseg plan``): what a folder holds, measured over every file.

The folder is first checked exactly as ``dualseg check-data`` does (a folder with problems raises
:class:`DataProblems` carrying check-data's report); a second pass reads each pair once more for the intensities,
class frequencies and connected components. Memory stays bounded: one image at a time, a fixed-size pixel sample per
population (:class:`~dualseg.planning.stats.PixelStats`), counted values for sizes and areas.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import ndimage

from dualseg.data.check import DataReport, check_data
from dualseg.data.descriptions import DatasetDescription, description_to_dict
from dualseg.data.io import read_image, read_mask, to_channels, to_float
from dualseg.data.layouts import scan_folder
from dualseg.data.spacing import pixels_per_mm
from dualseg.errors import DualsegError
from dualseg.planning.stats import SAMPLE_SIZE, PixelStats, spread
from dualseg.progress import progress_bar

CONNECTIVITY = "8-connected"  # diagonal neighbours join: thin structures (vessels, membranes) stay whole
EIGHT = np.ones((3, 3), dtype=bool)


class DataProblems(DualsegError):
    """The folder has check-data problems; ``report`` holds them (``report.render()`` prints them)."""

    def __init__(self, report: DataReport) -> None:
        self.report = report
        super().__init__(f"{len(report.problems)} problem(s) in {report.root}: {report.problems[0]}; "
                         f"run 'dualseg check-data {report.root}' for all")


def _bit_depths(report: DataReport) -> list[str]:
    """The stored sample types (uint8, uint16, float32, ...) from check-data's format counts."""
    return sorted({key.split()[1] for key in report.formats})


def _grouping(stems: list[str], d: DatasetDescription) -> dict:
    """Groups that splits keep together (the description's group key) and volumes (its volume pattern)."""
    out: dict = {"kind": "2D images", "groups": None, "volumes": None}
    if d.group_key is not None:
        per_group = Counter(d.group_key(s) for s in stems)
        out["groups"] = {"count": len(per_group), "images_per_group": spread(Counter(per_group.values()))}
    if d.volume_pattern is not None:
        pattern = re.compile(d.volume_pattern)
        per_volume = Counter(m.group(1) for s in stems if (m := pattern.match(s)))
        out["kind"] = "2D slices of volumes"
        out["volumes"] = {"count": len(per_volume), "slices_per_volume": spread(Counter(per_volume.values()))}
    return out


def _spacing(stated: list[float | None], d: DatasetDescription) -> dict | None:
    """The pixel spacing (mm) the image files state (:mod:`dualseg.data.spacing`), else the description's, else
    None: ``{"source", "images_stating", "mm": {min, median, max}}``."""
    found = sorted(1 / r for r in stated if r is not None)
    if found:
        mm = {"min": found[0], "median": float(np.median(found)), "max": found[-1]}
        return {"source": "files", "images_stating": len(found), "mm": mm}
    if d.spacing_mm is not None:
        return {"source": "description", "images_stating": 0, "mm": dict.fromkeys(("min", "median", "max"),
                                                                                   d.spacing_mm)}
    return None


def fingerprint(root: str | Path, dataset: str = "auto", progress: bool = True,
                sample_size: int = SAMPLE_SIZE) -> dict:
    """Measure a dataset folder; JSON-serialisable. Raises :class:`DataProblems` when check-data finds problems.

    Intensities are the values the model is fed: integer images scaled to [0, 1] by their type's range, converted to
    the description's channel count. Foreground pixels are those of the description's foreground classes (every
    class when it has no background, as ISBI 2012). Components (8-connected) are counted per foreground class per mask.
    """
    if not Path(root).is_dir():  # scan_folder's message names train's settings
        raise DualsegError(f"dataset folder not found: {root}; give an existing folder holding images/ and masks/")
    report = check_data(root, dataset, progress)
    if report.problems:
        raise DataProblems(report)
    d = report.description
    assert d is not None  # a description that cannot be resolved is a check-data problem
    scan = scan_folder(root, d.image_dir, d.mask_dir, d.fov_dir) if d.fov_dir else scan_folder(root)  # as check-data
    every, fore = PixelStats(d.channels, sample_size), PixelStats(d.channels, sample_size, seed=1)
    class_pixels = np.zeros(d.num_classes, dtype=np.int64)
    class_images = np.zeros(d.num_classes, dtype=np.int64)
    areas: dict[int, Counter] = {c: Counter() for c in d.foreground}
    stated: list[float | None] = []
    for s in progress_bar(scan.samples, desc="fingerprint", enabled=progress, unit="pair"):
        image = to_channels(to_float(read_image(s.image, s.extra_channels), s.image), d.channels, s.image)
        labels = d.encode_mask(read_mask(s.mask), s.mask)
        stated.append(pixels_per_mm(s.image))
        pixels = image.reshape(-1, d.channels)
        every.add(pixels)
        fore.add(pixels[np.isin(labels, d.foreground).ravel()])
        counts = np.bincount(labels.ravel(), minlength=d.num_classes)
        class_pixels += counts
        class_images += counts > 0
        for c in d.foreground:
            components, n = ndimage.label(labels == c, structure=EIGHT)
            if n:
                areas[c].update(np.bincount(components.ravel())[1:].tolist())
    total = int(class_pixels.sum())
    sizes = report.sizes
    return {
        "dataset_folder": str(root),
        "description": description_to_dict(d),
        "pairs": report.pairs,
        "image_sizes": {
            "counts": [{"width": w, "height": h, "images": n} for (h, w), n in sizes.most_common()],
            "width": spread(Counter({w: n for (_, w), n in sizes.items()})),
            "height": spread(Counter({h: n for (h, _), n in sizes.items()})),
        },
        "formats": dict(report.formats.most_common()),
        "bit_depth": _bit_depths(report),
        "channels": d.channels,
        **_grouping([s.stem for s in scan.samples], d),
        "spacing": _spacing(stated, d),
        "intensity": {
            "values": "as fed to the model: integer images / their type's maximum (to [0, 1]), description's channels",
            "percentiles_from": f"uniform sample of at most {sample_size} pixels per population (exact below that); "
                                "min, max, mean, std exact",
            "all": every.summary(),
            "foreground": fore.summary(),
        },
        "mask": {
            "encoding": {str(v): c for v, c in d.mask_values.items()} if d.mask_values else "class indices",
            "instance_masks": d.instance_masks,
            "stored_values": {str(v): n for v, n in sorted(report.mask_values.items())},
        },
        "classes": [
            {"index": c, "name": d.class_names[c], "pixels": int(class_pixels[c]),
             "fraction": float(class_pixels[c] / total) if total else 0.0, "images": int(class_images[c])}
            for c in range(d.num_classes)
        ],
        "objects": {
            "connectivity": CONNECTIVITY,
            "per_class": [
                {"index": c, "name": d.class_names[c], "components": sum(areas[c].values()),
                 "area": spread(areas[c])}
                for c in d.foreground
            ],
        },
        "fov_masks": report.fov,
        "notes": report.notes,
    }


def render_fingerprint(fp: dict) -> str:
    """A short human summary of a fingerprint."""
    d = fp["description"]
    w, h = fp["image_sizes"]["width"], fp["image_sizes"]["height"]
    lines = [
        f"dataset folder: {fp['dataset_folder']} ({d['name']}; {fp['pairs']} pairs; {fp['kind']})",
        f"image sizes (W x H): median {w['median']:g}x{h['median']:g}, from {w['min']:g}x{h['min']:g} to "
        f"{w['max']:g}x{h['max']:g} ({len(fp['image_sizes']['counts'])} distinct)",
        f"stored as: {', '.join(fp['bit_depth'])}; model channels: {fp['channels']}",
    ]
    for population in ("all", "foreground"):
        for c, stats in enumerate(fp["intensity"][population] or []):
            p = stats["percentiles"]
            lines.append(f"intensity ch{c} {population}: mean {stats['mean']:.4g}, std {stats['std']:.4g}, "
                         f"p0.5 {p['0.5']:.4g}, p50 {p['50']:.4g}, p99.5 {p['99.5']:.4g}")
    lines.append("classes: " + ", ".join(f"{k['name']} {k['fraction']:.2%} (in {k['images']} images)"
                                         for k in fp["classes"]))
    for k in fp["objects"]["per_class"]:
        area = k["area"]
        sizes = f", area median {area['median']:g} px, smallest {area['min']:g}" if area else ""
        lines.append(f"objects {k['name']}: {k['components']} components{sizes}")
    if fp["fov_masks"]:
        lines.append(f"FOV masks: {fp['fov_masks']}")
    if fp.get("spacing"):
        sp = fp["spacing"]
        lines.append(f"pixel spacing: median {sp['mm']['median']:.4g} mm, from {sp['mm']['min']:.4g} to "
                     f"{sp['mm']['max']:.4g} ({sp['source']}; {sp['images_stating']} images state it)")
    for key, unit in (("groups", "images_per_group"), ("volumes", "slices_per_volume")):
        if fp[key]:
            lines.append(f"{key}: {fp[key]['count']} ({unit.replace('_', ' ')}: median {fp[key][unit]['median']:g})")
    return "\n".join(lines)


def save_fingerprint(fp: dict, path: str | Path, data_root: str | Path, overwrite: bool = False) -> None:
    """Write ``fp`` as JSON under the output rules (:mod:`dualseg.safety.outputs`): never into the data folder,
    never over a file dualseg did not write unless ``overwrite``."""
    from dualseg.safety.atomic import atomic_write_text
    from dualseg.safety.outputs import check_separate, writing_into

    out = Path(path)
    if out.is_dir():
        raise DualsegError(f"{out} is a folder; give a file name such as {out / 'fingerprint.json'}")
    check_separate(out, [data_root])
    with writing_into(out.parent, overwrite=overwrite):
        atomic_write_text(out, json.dumps(fp, indent=1))
