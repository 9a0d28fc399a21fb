"""Predict masks for a folder of images (or one image) with a trained model; write masks and overlays."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from dualseg.data.dataset import load_image
from dualseg.data.io import IMAGE_EXTENSIONS, read_image
from dualseg.engine.precision import autocast, resolve_precision
from dualseg.errors import DualsegError
from dualseg.inference.loading import load_trained
from dualseg.inference.predictor import predict_logits
from dualseg.inference.writers import write_prediction
from dualseg.metrics import logits_to_labels


def list_inputs(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DualsegError(f"input not found: {path}; give an image file or a folder of images")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DualsegError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


@torch.no_grad()
def predict_folder(
    model_path: str | Path, inputs: str | Path, output_dir: str | Path, which: str = "best",
    overlays: bool = True, device: str = "auto", progress: bool = True,
) -> list[Path]:
    """Write ``OUTPUT_DIR/<stem>.png`` (the dataset's mask encoding, input size) and ``overlays/<stem>.png``."""
    from dualseg.data.build import input_scale
    from dualseg.engine.seed import resolve_device

    files = list_inputs(inputs)
    dev = resolve_device(device)
    trained = load_trained(model_path, which, dev)
    cfg, description = trained.config, trained.description
    amp_dtype = resolve_precision(cfg.train.precision, dev)
    out = Path(output_dir)
    written = []
    for path in tqdm(files, desc="predict", disable=not progress):
        image = load_image(path, trained.model.in_channels, cfg.data.normalize)
        x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].to(dev)
        with autocast(dev, amp_dtype):
            logits = predict_logits(trained.model, x, roi_size=cfg.eval.roi_size, overlap=cfg.eval.overlap,
                                    resize=cfg.data.resize, input_scale=input_scale(cfg))
        labels = logits_to_labels(logits)[0].cpu().numpy()
        write_prediction(out, path.stem, description.decode_labels(labels), read_image(path), labels,
                         description.background, overlays)
        written.append(out / f"{path.stem}.png")
    return written
