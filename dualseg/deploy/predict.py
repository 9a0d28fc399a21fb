"""Predict masks for 2D images (a folder or one file) and NIfTI volumes (slice by slice) with a trained model or a
package: masks at the input size, optional class probabilities, SR images of dual-stream models, overlays."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dualseg.data.dataset import IMAGENET_MEAN, IMAGENET_STD, normalize_image
from dualseg.data.io import read_image, to_channels
from dualseg.data.preprocess import unit_image
from dualseg.deploy.scaling import InputScaler, ScaleChoice, parse_scale
from dualseg.errors import DualsegError
from dualseg.inference.inputs import list_inputs
from dualseg.inference.loading import LoadedModel, load_inference_model
from dualseg.inference.predictor import predict_probabilities
from dualseg.inference.scale import resample, resample_array
from dualseg.inference.spec import InputSpec
from dualseg.inference.volumes import is_nifti, nifti_stem, read_volume, unit_range, write_volume
from dualseg.inference.writers import write_prediction, write_probabilities, write_sr_image
from dualseg.progress import progress_bar
from dualseg.runtime import PRECISIONS, autocast, resolve_precision
from dualseg.safety.limits import out_of_memory_hint
from dualseg.safety.outputs import claim, writing_into

PROBABILITY_FORMATS = ("png", "npy")


@dataclass
class PredictOptions:
    """How to predict. ``roi_size`` / ``overlap``: sliding window (None = the model's own setting, from its run or
    package); ``sw_batch_size``: windows per forward pass; ``batch_size``: same-size images (or volume slices) per
    forward pass; ``tta``: flip test-time augmentation; ``probabilities``: also write class probabilities
    (``png`` or ``npy``); ``sr``: also write the SR image of a dual-stream model; ``overlays``: coloured overlays
    of 2D images; ``whole_image``: ignore the model's sliding-window setting; ``scale``: ``auto`` (bring each 2D
    input to the model's training scale, :mod:`dualseg.deploy.scaling`), ``none`` or a fixed factor;
    ``spacing_mm``: the inputs' pixel spacing where their files state none (models with the ``spacing`` proxy)."""

    roi_size: Sequence[int] | None = None
    overlap: float | None = None
    sw_batch_size: int = 4
    batch_size: int = 1
    tta: bool = False
    probabilities: str | None = None
    sr: bool = False
    overlays: bool = True
    whole_image: bool = False
    scale: str | float = "auto"
    spacing_mm: float | None = None
    precision: str | None = None  # None: the model's own (its train.precision); fp32 repeats across CPU kinds

    def check(self) -> None:
        parse_scale(self.scale)
        if self.spacing_mm is not None and not self.spacing_mm > 0:
            raise DualsegError(f"--spacing must be a positive pixel spacing in mm, got {self.spacing_mm}")
        if self.precision not in (None, *PRECISIONS):
            raise DualsegError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.probabilities not in (None, *PROBABILITY_FORMATS):
            raise DualsegError(
                f"unknown probability format {self.probabilities!r}; choose {' or '.join(PROBABILITY_FORMATS)}"
            )
        if self.batch_size < 1 or self.sw_batch_size < 1:
            raise DualsegError("batch sizes must be >= 1")
        if self.overlap is not None and not 0 <= self.overlap < 1:
            raise DualsegError(f"--overlap must be in [0, 1), got {self.overlap}")
        if self.roi_size is not None and (len(self.roi_size) != 2 or not all(1 <= s <= 65536 for s in self.roi_size)):
            raise DualsegError(f"--roi-size must be two sides in 1..65536, got {list(self.roi_size)}")


def run_spec(spec: InputSpec, options: PredictOptions) -> InputSpec:
    """The model's spec with this call's overrides: ``--roi-size``, ``--overlap``, ``--whole-image``,
    ``--precision``."""
    roi = None if options.whole_image else (options.roi_size or spec.roi_size)
    overlap = spec.overlap if options.overlap is None else options.overlap
    return dataclasses.replace(spec, roi_size=roi, overlap=overlap, precision=options.precision or spec.precision)


class _Runner:
    """Feeds normalised (C, H, W) arrays to the model in batches and returns numpy outputs per image."""

    def __init__(self, loaded: LoadedModel, device: torch.device, options: PredictOptions) -> None:
        self.loaded, self.device, self.options = loaded, device, options
        self.spec = run_spec(loaded.spec, options)
        self.scaler = InputScaler(self.spec, options.scale, loaded.description, spacing_mm=options.spacing_mm)
        self.sources: dict[str, Path] = {}  # input file name -> its path (the ``spacing`` proxy reads headers)
        self.amp_dtype = resolve_precision(self.spec.precision, device)
        # Windows run on the model's device; the full-size output is stitched in CPU memory.
        self.kwargs = dict(sw_batch_size=options.sw_batch_size, sw_device=device, device=torch.device("cpu"),
                           with_sr=options.sr)

    def __call__(self, images: list[np.ndarray], sizes: list[tuple[int, int]] | None = None
                 ) -> list[dict[str, np.ndarray]]:
        """``images``: normalised (C, H, W) float32 arrays of one size (one image is used without a copy); the list
        is emptied. ``sizes``: the (H, W) each image's outputs go back to (rescaled inputs), probabilities before
        the argmax; default their own size."""
        count = len(images)
        sizes = sizes or [tuple(images[0].shape[1:])] * count
        x = torch.from_numpy(images[0][None] if count == 1 else np.stack(images))
        images.clear()  # the caller's list: full-size inputs are freed once the model is done with them
        if self.spec.roi_size is None:
            x = x.to(self.device)
        with autocast(self.device, self.amp_dtype):
            out = predict_probabilities(self.loaded.model, x, self.spec, tta=self.options.tta, **self.kwargs)
        height, width = x.shape[-2:]
        del x
        dtype = torch.uint8 if out["probs"].shape[1] <= 256 else torch.int64
        results = []
        for i, (h, w) in enumerate(sizes):
            probs = resample(out["probs"][i : i + 1], (h, w))[0]
            item = {"labels": probs.argmax(0).to(dtype).cpu().numpy()}
            if self.options.probabilities:
                item["probs"] = probs.cpu().numpy()
            if "sr" in out:
                sr = out["sr"][i : i + 1]
                sr = resample(sr, (round(h * sr.shape[-2] / height), round(w * sr.shape[-1] / width)))
                item["sr"] = sr[0].cpu().numpy().transpose(1, 2, 0)
            results.append(item)
        return results


def _batches(items: Iterator[tuple[object, np.ndarray, object]], size: int) -> Iterator[list]:
    """Consecutive items whose arrays have the same shape, at most ``size`` per batch. A full batch is handed on
    before the next item is read, so at most one batch of inputs is in memory."""
    batch: list = []
    for item in items:
        if batch and batch[0][1].shape != item[1].shape:
            yield batch
            batch = []
        batch.append(item)
        item = None  # noqa: PLW2901 - drop this frame's reference: the consumer frees the input after use
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def denormalize(sr: np.ndarray, stats: tuple[np.ndarray, np.ndarray], mode: str) -> np.ndarray:
    """Undo the input normalisation on an SR image (the SR target was the HR image normalised like the input):
    ``zscore`` with the input image's own per-channel ``stats`` (mean, std of its [0, 1] values), ``imagenet``
    with ImageNet's statistics; ``unit`` images are already in [0, 1]."""
    if mode == "zscore":
        return sr * np.maximum(stats[1], 1e-6) + stats[0]
    if mode == "imagenet":
        return sr * IMAGENET_STD + IMAGENET_MEAN
    return sr


@dataclass
class _Image2D:
    """What is kept of a 2D input while it is predicted: its file name, the stored pixels (for the overlay), the
    per-channel mean and std of its [0, 1] values (to bring an SR image back to intensities), its bit depth and
    the scale factor it was predicted at (None: its own scale, unrecorded)."""

    file: str
    stored: np.ndarray
    stats: tuple[np.ndarray, np.ndarray]
    bits: int
    scale: ScaleChoice | None = None

    @property
    def stem(self) -> str:
        return Path(self.file).stem


def _prepare_2d(file: str, stored: np.ndarray, channels: int, spec: InputSpec) -> tuple[_Image2D, np.ndarray]:
    """The kept facts and the model input (C, H, W) float32; no full-size float copy outlives this call."""
    raw = unit_image(stored, channels, spec.preprocess, file)
    stats = (raw.mean(axis=(0, 1)), raw.std(axis=(0, 1)))
    x = np.ascontiguousarray(normalize_image(raw, spec.normalize, file).transpose(2, 0, 1), dtype=np.float32)
    return _Image2D(file, stored, stats, 16 if stored.dtype.itemsize > 1 else 8), x


def _to_model_scale(image: _Image2D, x: np.ndarray, runner: _Runner, channels: int) -> np.ndarray:
    """``x`` resampled by the factor the runner's scaler chooses for ``image`` (recorded in ``image.scale``)."""
    image.scale = runner.scaler.choose(image.file, to_channels(image.stored, channels, image.file),
                                       lambda: runner([x])[0]["labels"], runner.sources.get(image.file))
    if image.scale is None or image.scale.factor == 1.0:
        return x
    return resample_array(x, image.scale.factor)


def _predict_2d(items: Iterable[tuple[str, np.ndarray]], loaded: LoadedModel, runner: _Runner,
                batch_size: int) -> Iterator[tuple[_Image2D, dict[str, np.ndarray]]]:
    """Each 2D input (file name, stored pixels) with its outputs at its own size, read lazily, in batches."""
    channels = loaded.model.in_channels

    def model_inputs() -> Iterator[tuple[_Image2D, np.ndarray, None]]:
        for file, stored in items:
            image, x = _prepare_2d(file, stored, channels, loaded.spec)
            yield image, _to_model_scale(image, x, runner, channels), None

    lower = "--roi-size (sliding window), --sw-batch-size or --batch-size"
    for batch in _batches(model_inputs(), batch_size):
        metas, inputs = [b[0] for b in batch], [b[1] for b in batch]
        batch.clear()
        h, w = inputs[0].shape[1:]
        with out_of_memory_hint(f"predicting {metas[0].stem} ({w}x{h})", lower):
            results = runner(inputs, [m.stored.shape[:2] for m in metas])
        yield from zip(metas, results)


@torch.no_grad()
def predict_arrays(loaded: LoadedModel, images: Iterable[tuple[str, np.ndarray]], device: torch.device,
                   options: PredictOptions | None = None) -> Iterator[tuple[str, np.ndarray, ScaleChoice | None]]:
    """``dualseg predict``'s path on 2D images held in memory: (file name, pixels as stored) -> (file name, class
    indices at the input size, the scale it was predicted at)."""
    options = options or PredictOptions(overlays=False)
    options.check()
    runner = _Runner(loaded, device, options)
    for image, result in _predict_2d(images, loaded, runner, options.batch_size):
        yield image.file, result["labels"], image.scale


@torch.no_grad()
def predict_folder(
    model_path: str | Path, inputs: str | Path | Sequence[Path], output_dir: str | Path, which: str = "best",
    overlays: bool = True, device: str = "auto", progress: bool = True, options: PredictOptions | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Predict every input (a file, a folder, or a list of files: one model load and one scale notice for all);
    return the written mask files.

    2D images: ``OUTPUT_DIR/<stem>.png`` (the dataset's mask encoding, input size), ``overlays/<stem>.png``,
    with options ``probabilities/`` and ``sr/<stem>.png``. NIfTI volumes: ``OUTPUT_DIR/<stem>.nii.gz`` (class
    indices, uint8, the input's shape, affine and header geometry), with probabilities
    ``probabilities/<stem>.nii.gz`` (float32, classes on a 4th axis). With a scale (``options.scale``) the factor
    of each input goes to ``scales.csv``. ``model_path``: run directory, checkpoint or package folder.
    ``OUTPUT_DIR`` follows :mod:`dualseg.safety.outputs`: apart from the inputs and the model, and a file dualseg
    did not write there is replaced only with ``overwrite``.
    """
    from dualseg.runtime import resolve_device

    options = options or PredictOptions(overlays=overlays)
    options.check()
    sources = [Path(inputs)] if isinstance(inputs, str | Path) else [Path(p) for p in inputs]
    files = [f for source in sources for f in list_inputs(source)]
    stems = [nifti_stem(f) if is_nifti(f) else f.stem for f in files]
    clash = next((stem for stem in stems if stems.count(stem) > 1), None)
    if clash is not None:
        raise DualsegError(f"two inputs are named '{clash}': their predictions would have the same name; rename or "
                           "move one")
    volumes = [p for p in files if is_nifti(p)]
    if options.sr and volumes:
        raise DualsegError(f"SR images are written for 2D images only ({volumes[0].name} is a volume); drop --sr")
    dev = resolve_device(device)
    loaded = load_inference_model(model_path, which, dev)
    runner = _Runner(loaded, dev, options)
    out = Path(output_dir)
    with writing_into(out, [*sources, loaded.source], overwrite=overwrite):
        return _predict_all(files, loaded, runner, out, options, progress)


def _predict_all(files: list[Path], loaded: LoadedModel, runner: _Runner, out: Path, options: PredictOptions,
                 progress: bool) -> list[Path]:
    written: list[Path] = []
    images = [p for p in files if not is_nifti(p)]
    volumes = [p for p in files if is_nifti(p)]
    for path in images:  # a stranger's file where a mask goes is refused before any work, not halfway
        claim(out / f"{path.stem}.png")
    bar = progress_bar(total=len(files), desc="predict", enabled=progress, unit="file")
    runner.sources = {path.name: path for path in images}
    read = ((path.name, read_image(path)) for path in images)
    for image, result in _predict_2d(read, loaded, runner, options.batch_size):
        labels = result["labels"]
        write_prediction(out, image.stem, loaded.description.decode_labels(labels), image.stored, labels,
                         loaded.description.background, options.overlays)
        if "probs" in result:
            write_probabilities(out, image.stem, result["probs"], list(loaded.description.class_names),
                                loaded.description.background, options.probabilities)
        if "sr" in result:
            sr_image = denormalize(result["sr"], image.stats, loaded.spec.normalize)
            write_sr_image(out, image.stem, sr_image, image.bits)
        written.append(out / f"{image.stem}.png")
        bar.update()
    for path in volumes:
        written.append(_predict_volume(path, loaded, runner, out, options))
        bar.update()
    bar.close()
    runner.scaler.write_csv(out)
    return written


def _predict_volume(path: Path, loaded: LoadedModel, runner: _Runner, out: Path, options: PredictOptions) -> Path:
    """Predict a NIfTI volume slice by slice (see :mod:`dualseg.inference.volumes`); write labels (+ probs)."""
    slices, reference = read_volume(path)
    slices = unit_range(slices)
    channels = loaded.model.in_channels
    factor = runner.scaler.volume_factor(path)  # a FACTOR, or the header's spacing; no other proxy on volumes

    def normalised() -> Iterator[tuple[int, np.ndarray, None]]:
        for k, s in enumerate(slices):
            unit = unit_image(s[..., None], channels, loaded.spec.preprocess, path)
            x = np.ascontiguousarray(normalize_image(unit, loaded.spec.normalize).transpose(2, 0, 1), dtype=np.float32)
            yield k, x if factor is None else resample_array(x, factor), None

    labels = np.zeros(slices.shape, np.uint8)
    probs = None
    for batch in _batches(normalised(), options.batch_size):
        indices, inputs = [b[0] for b in batch], [b[1] for b in batch]
        batch.clear()
        for k, result in zip(indices, runner(inputs, [slices.shape[1:]] * len(inputs))):
            labels[k] = result["labels"]
            if "probs" in result:
                if probs is None:
                    probs = np.zeros((*slices.shape, result["probs"].shape[0]), np.float32)
                probs[k] = result["probs"].transpose(1, 2, 0)
    suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    stem = nifti_stem(path)
    target = write_volume(labels, reference, out / f"{stem}{suffix}", np.uint8)
    if probs is not None:
        write_volume(probs, reference, out / "probabilities" / f"{stem}{suffix}", np.float32)
    return target
