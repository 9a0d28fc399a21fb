"""The scale a model learns at: the config's scale proxy (``data.scale_proxy``, ``auto`` = the dataset
description's) measured on every training image, from the files the trainer reads (image, FOV mask, label mask,
the image's header for ``spacing``)."""

from __future__ import annotations

from collections.abc import Sequence

from dualseg.config import Config
from dualseg.data.build import DataBundle
from dualseg.data.descriptions import DatasetDescription
from dualseg.data.io import read_image, read_mask
from dualseg.data.scan import Sample
from dualseg.data.spacing import pixels_per_mm
from dualseg.inference.scale import TrainScale, check_proxy, fov_diameter, object_size, summarise


def resolve_proxy(cfg: Config, description: DatasetDescription) -> str:
    """The proxy a run records: ``data.scale_proxy``, ``auto`` = the description's; ``none`` when the run trains
    on resized images (``data.resize`` fixes the input size, so the input's own scale never reaches the model)."""
    if cfg.data.resize:
        return "none"
    setting = cfg.data.scale_proxy
    return check_proxy(description.scale_proxy if setting == "auto" else setting)


def background_class(description: DatasetDescription) -> int:
    """The class that is not an object for ``object_size``: the description's background, else class 0."""
    return 0 if description.background is None else description.background


def sample_scale(proxy: str, sample: Sample, description: DatasetDescription,
                 spacing_mm: float | None = None) -> float | None:
    """The proxy measured on one training sample (FOV diameter from its FOV mask when it has one; ``spacing``: the
    image file's, else ``spacing_mm``, else the description's, as pixels per mm)."""
    if proxy == "spacing":
        stated = pixels_per_mm(sample.image)
        if stated is not None:
            return stated
        given = spacing_mm or description.spacing_mm
        return None if given is None else 1 / given
    if proxy == "fov_diameter":
        if sample.fov is not None:
            return fov_diameter(fov=read_mask(sample.fov))
        return fov_diameter(image=read_image(sample.image))
    if proxy == "object_size" and sample.mask is not None:
        labels = description.encode_mask(read_mask(sample.mask), sample.mask)
        return object_size(labels, background_class(description))
    return None


def measure_train_scale(proxy: str, samples: Sequence[Sample], description: DatasetDescription,
                        spacing_mm: float | None = None) -> TrainScale | None:
    """The proxy's median and range over ``samples``; None for ``none`` or when nothing was measurable."""
    if proxy == "none":
        return None
    return summarise([sample_scale(proxy, s, description, spacing_mm) for s in samples])


def run_train_scale(cfg: Config, bundle: DataBundle) -> tuple[str, TrainScale | None]:
    """The proxy of a run and its measurement over the training split."""
    proxy = resolve_proxy(cfg, bundle.description)
    return proxy, measure_train_scale(proxy, bundle.subset("train"), bundle.description, cfg.data.spacing_mm)
