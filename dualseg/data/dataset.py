"""The segmentation dataset: lazily decoded, normalised, optionally cached and augmented samples as dict batches.

A sample is a dict with fixed keys, whatever model consumes it:
``image`` (C, H, W) float32, ``mask`` (H, W) int64 class indices, ``fov`` (H, W) bool when the dataset has
field-of-view masks, ``name`` (the stem) and ``size`` (original H, W).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dualseg.data.descriptions import DatasetDescription
from dualseg.data.io import read_image, read_mask
from dualseg.data.preprocess import preprocess_image, read_unit, unit_image
from dualseg.data.scan import Sample
from dualseg.data.sr_pairs import SRSpec, from_hr_stack, load_target, to_hr_stack
from dualseg.errors import DualsegError

NORMALIZATIONS = ("zscore", "unit", "imagenet")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalize_image(image: np.ndarray, mode: str, path: str | Path = "") -> np.ndarray:
    """``zscore``: per image and channel (nnU-Net's default for non-CT); ``unit``: [0, 1]; ``imagenet``: RGB stats.
    Statistics that are not finite (values overflowing float32) raise an error naming ``path``."""
    if mode == "unit":
        return image
    if mode == "zscore":
        with np.errstate(over="ignore", invalid="ignore"):
            mean = image.mean(axis=(0, 1), keepdims=True)
            std = image.std(axis=(0, 1), keepdims=True)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise DualsegError(f"{path or 'an image'}: its mean or standard deviation overflows float32 (values too "
                               "large); rescale the file")
        return (image - mean) / np.maximum(std, 1e-6)
    if mode == "imagenet":
        if image.shape[-1] != 3:
            raise DualsegError("normalize 'imagenet' needs 3-channel images; use 'zscore' for gray images")
        return (image - IMAGENET_MEAN) / IMAGENET_STD
    raise DualsegError(f"unknown normalisation '{mode}'; choose one of {', '.join(NORMALIZATIONS)}")


def load_image(path, channels: int, normalize: str, extra_channels: Sequence = (), preprocess: str = "none"
               ) -> np.ndarray:
    """Read, make the [0, 1] model input for ``channels`` (:func:`~dualseg.data.preprocess.unit_image`: channel
    conversion, dtype scaling, the preprocessing step), normalise: (H, W, C) float32."""
    image = unit_image(read_image(path, extra_channels), channels, preprocess, path)
    return normalize_image(image, normalize, path)


class SegmentationDataset(Dataset):
    """Image/mask pairs of one split.

    Args:
        samples: the cases (from :func:`dualseg.data.scan.scan_folder`).
        description: how masks are encoded and how many channels the model takes.
        normalize: intensity normalisation (see :func:`normalize_image`).
        transform: a MONAI dictionary transform (training augmentation) or None.
        cache_bytes: decoded samples kept in memory up to this many bytes (LRU, per worker process); 0 = off.
        seed: makes augmentation a pure function of (seed, epoch, index), so runs repeat exactly and a resumed
            run draws the same augmentations as an uninterrupted one, whatever the worker count.
        sr: super-resolution pairs (adds ``hr_image``; see :mod:`dualseg.data.sr_pairs`), or None.
        preprocess: the step before normalisation (:mod:`dualseg.data.preprocess`).
        colour: a MONAI dictionary transform of the [0, 1] ``image`` before the step (colour augmentation), or
            None; with it the cache keeps [0, 1] images and each item is preprocessed and normalised after it.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        description: DatasetDescription,
        normalize: str = "zscore",
        transform=None,
        cache_bytes: int = 0,
        seed: int | None = None,
        sr: SRSpec | None = None,
        preprocess: str = "none",
        colour=None,
    ) -> None:
        if not samples:
            raise DualsegError("this split holds no images; check data.root and the split settings")
        self.samples = list(samples)
        self.description = description
        self.normalize = normalize
        self.transform = transform
        self.cache_bytes = cache_bytes
        self.seed = seed
        self.sr = sr
        self.preprocess = preprocess
        self.colour = colour
        if sr is not None:
            sr.check_targets()
        self.epoch = 0
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def load_arrays(self, index: int) -> dict[str, np.ndarray]:
        """Decoded, normalised arrays of one case (cached when enabled)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        arrays = self.read_arrays(self.samples[index])
        if self.cache_bytes > 0:
            nbytes = sum(a.nbytes for a in arrays.values())
            while self._cache and self._cached_bytes + nbytes > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= sum(a.nbytes for a in old.values())
            if nbytes <= self.cache_bytes:
                self._cache[index] = arrays
                self._cached_bytes += nbytes
        return arrays

    def read_arrays(self, s: Sample) -> dict[str, np.ndarray]:
        """Read and decode one case from its files: ``image``, and ``mask``, ``fov``, ``hr_image`` if it has them."""
        if self.colour is None:
            image = load_image(s.image, self.description.channels, self.normalize, s.extra_channels, self.preprocess)
        else:  # kept in [0, 1]: the colour augmentation of each item comes before the step and the normalisation
            image = read_unit(read_image(s.image, s.extra_channels), self.description.channels, self.preprocess,
                              s.image)
        arrays = {"image": image}
        size = arrays["image"].shape[:2]
        if s.mask is not None:
            mask = self.description.encode_mask(read_mask(s.mask), s.mask)
            if mask.shape != size:
                raise DualsegError(
                    f"size mismatch: image {s.image} is {size[1]}x{size[0]} but mask {s.mask} is "
                    f"{mask.shape[1]}x{mask.shape[0]} (W x H); masks must match their image"
                )
            arrays["mask"] = mask
        if s.fov is not None:
            fov = read_mask(s.fov) > 0
            if fov.shape != size:
                raise DualsegError(f"size mismatch: FOV mask {s.fov} does not match image {s.image}")
            arrays["fov"] = fov
        if self.sr is not None and self.sr.mode == "teacher":
            arrays["hr_image"] = load_target(self.sr, s.stem, arrays["image"].shape)
        return arrays

    def _item_seed(self, index: int, epoch: int) -> int:
        digest = hashlib.blake2b(f"{self.seed}:{epoch}:{index}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "little")

    def coloured_input(self, unit: np.ndarray, index: int, epoch: int) -> np.ndarray:
        """The colour-augmented (seeded like the spatial augmentation), preprocessed, normalised image."""
        if self.seed is not None:
            self.colour.set_random_state(seed=self._item_seed(index, epoch))
        coloured = self.colour({"image": torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1)))})["image"]
        image = preprocess_image(torch.as_tensor(coloured).numpy().transpose(1, 2, 0), self.preprocess)
        return normalize_image(image, self.normalize, self.samples[index].image)

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        """Sample ``index`` augmented for the current epoch, or an ``(epoch, index)`` pair for that epoch.

        The pair form (from the trainer's sampler) lets persistent DataLoader workers, whose dataset copies never
        see :meth:`set_epoch`, draw each epoch's augmentation.
        """
        epoch = self.epoch
        if isinstance(index, tuple):
            epoch, index = index
        arrays = self.load_arrays(index)
        size = arrays["image"].shape[:2]
        image = arrays["image"] if self.colour is None else self.coloured_input(arrays["image"], index, epoch)
        data = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))}
        for key in ("mask", "fov"):
            if key in arrays:
                data[key] = torch.from_numpy(arrays[key].astype(np.int64 if key == "mask" else np.uint8))[None]
        if self.sr is not None:
            data = to_hr_stack(self.sr, data, arrays.get("hr_image"))
        if self.transform is not None:
            if self.seed is not None:
                self.transform.set_random_state(seed=self._item_seed(index, epoch))
            data = self.transform(data)
        item = {"image": torch.as_tensor(data["image"], dtype=torch.float32).contiguous()}
        if "mask" in data:
            item["mask"] = torch.as_tensor(data["mask"])[0].round().long()
        if "fov" in data:
            item["fov"] = torch.as_tensor(data["fov"])[0] > 0.5
        if self.sr is not None:
            item["hr_image"] = torch.as_tensor(data["hr_image"], dtype=torch.float32).contiguous()
            item = from_hr_stack(self.sr, item)
        item["name"] = self.samples[index].stem
        item["size"] = torch.tensor(size)
        return item
