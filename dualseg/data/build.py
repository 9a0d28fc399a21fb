"""From the data section of a config to the description, the split and the datasets of each split."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dualseg.config import Config
from dualseg.data.copies import CopiesDataset, OfflineCopy, copy_samples, make_copies
from dualseg.data.dataset import SegmentationDataset
from dualseg.data.descriptions import DatasetDescription, with_overrides
from dualseg.data.layouts import scan_folder
from dualseg.data.preprocess import input_channels, read_channels
from dualseg.data.resolve import resolve_description
from dualseg.data.scan import Sample
from dualseg.data.splits import get_protocol, load_split, make_split, rotating_test_split
from dualseg.data.sr_pairs import SRSpec
from dualseg.data.transforms import build_colour_transform, build_train_transform
from dualseg.errors import DualsegError


@dataclass
class DataBundle:
    description: DatasetDescription
    samples: dict[str, Sample]
    split: dict[str, list[str]]
    copies: dict[str, OfflineCopy] = field(default_factory=dict)  # virtual samples of a split protocol

    def subset(self, name: str) -> list[Sample]:
        return [self.samples[s] for s in self.split[name]]


def describe(cfg: Config) -> DatasetDescription:
    """The folder's description with the config's folder names; ``channels`` are the model's (after
    ``data.preprocess``: 1 for ``green``)."""
    if not cfg.data.root:
        raise DualsegError("data.root is not set; pass --set data.root=PATH (a folder with images/ and masks/)")
    description = resolve_description(cfg.data.root, cfg.data.dataset)
    if cfg.data.preprocess == "green" and description.channels != 3:
        raise DualsegError(f"data.preprocess 'green' keeps the green channel of RGB images, but dataset "
                           f"'{description.name}' has {description.channels} channel(s): use none or clahe")
    return with_overrides(
        description, image_dir=cfg.data.image_dir, mask_dir=cfg.data.mask_dir, fov_dir=cfg.data.fov_dir,
        instance_masks=cfg.data.instance_masks, channels=input_channels(cfg.data.preprocess, description.channels),
    )


def prepare_data(cfg: Config, split_file: Path | None = None) -> DataBundle:
    """Scan the folder and split it; an existing ``split_file`` (a resumed run) is reused as it is."""
    description = describe(cfg)
    scan = scan_folder(cfg.data.root, description.image_dir, description.mask_dir, description.fov_dir)
    if scan.problems:
        shown = "; ".join(scan.problems[:5])
        more = f" (+{len(scan.problems) - 5} more)" if len(scan.problems) > 5 else ""
        raise DualsegError(f"dataset {cfg.data.root} has problems: {shown}{more}; run 'dualseg check-data' for all")
    samples = {s.stem: s for s in scan.samples}
    copies: dict[str, OfflineCopy] = {}
    if cfg.data.split.protocol is not None:
        protocol = get_protocol(cfg.data.split.protocol)
        if cfg.data.split.strategy not in ("default", "kfold"):
            raise DualsegError(f"data.split.protocol '{protocol.name}' makes its own split; leave "
                               "data.split.strategy at default (its folds: data.split.folds / fold)")
        copies = make_copies(scan.samples, protocol.copies, cfg.data.split.seed)
        samples = copy_samples(copies)
    stems = sorted(samples)
    if split_file is not None and split_file.is_file():
        split = load_split(split_file, stems)
    elif copies:
        split = protocol_split(cfg, description, copies)
    else:
        sc = cfg.data.split
        strategy = sc.strategy
        official = None
        if strategy in ("default", "kfold") and description.default_test is not None:
            official = description.default_test(stems, Path(cfg.data.root))
        split = make_split(
            stems,
            "random" if strategy == "default" else strategy,
            seed=sc.seed,
            val_fraction=description.val_fraction if sc.val_fraction is None else sc.val_fraction,
            test_fraction=description.test_fraction if sc.test_fraction is None else sc.test_fraction,
            folds=sc.folds,
            fold=sc.fold,
            file=sc.file,
            group_key=description.group_key,
            official_test=official,
        )
    if not split["train"]:
        raise DualsegError(f"the split of {cfg.data.root} leaves no training images; check data.split")
    return DataBundle(description, samples, split, copies)


def protocol_split(cfg: Config, description: DatasetDescription, copies: dict[str, OfflineCopy]) -> dict:
    """The split of ``data.split.protocol``: copy by copy, or by source image (and the dataset's group)."""
    sc = cfg.data.split
    protocol = get_protocol(sc.protocol)

    def by_source(stem: str) -> str:
        source = copies[stem].source.stem
        return description.group_key(source) if description.group_key else source

    return rotating_test_split(
        sorted(copies), fold=sc.fold, folds=sc.folds, seed=sc.seed, val_fraction=protocol.val_fraction,
        test_fraction=protocol.test_fraction, group_key=by_source if protocol.by_source else None,
    )


def split_meta(cfg: Config, bundle: DataBundle) -> dict:
    return {
        "dataset": bundle.description.name,
        "root": str(Path(cfg.data.root).resolve()),
        "strategy": cfg.data.split.strategy,
        "protocol": cfg.data.split.protocol,
        "fold": cfg.data.split.fold,
        "seed": cfg.data.split.seed,
        "counts": {k: len(v) for k, v in bundle.split.items()},
    }


def sr_spec(cfg: Config) -> SRSpec | None:
    sr = cfg.data.sr
    if sr.mode == "none":
        return None
    targets = Path(sr.targets_dir) if sr.targets_dir else None
    return SRSpec(sr.mode, sr.scale, sr.mask_at, targets, cfg.data.normalize, sr.interpolation)


def make_dataset(cfg: Config, bundle: DataBundle, name: str, train: bool) -> SegmentationDataset:
    """Training datasets augment (and build SR pairs); evaluation datasets give original images and masks."""
    transform = colour = None
    description = bundle.description
    if train:
        patch = tuple(cfg.data.patch_size) if cfg.data.patch_size else None
        resize = tuple(cfg.data.resize) if cfg.data.resize else None
        transform = build_train_transform(cfg.data.augment, patch, resize, description.scale_range)
        read = read_channels(cfg.data.preprocess, description.channels)
        colour = build_colour_transform(cfg.data.augment, read, description.name)
    kwargs = dict(
        normalize=cfg.data.normalize,
        transform=transform,
        cache_bytes=cfg.data.cache_mb * 2**20,
        seed=cfg.seed if train else None,
        sr=sr_spec(cfg) if train else None,
        preprocess=cfg.data.preprocess,
        colour=colour,
    )
    if bundle.copies:
        return CopiesDataset(bundle.subset(name), bundle.description, bundle.copies, **kwargs)
    return SegmentationDataset(bundle.subset(name), bundle.description, **kwargs)


def describe_split(split: dict[str, list[str]]) -> str:
    return json.dumps({k: len(v) for k, v in split.items()})
