"""DRFL trains on real data with its three loss terms (Eq. 7), from the shipped light config."""

from __future__ import annotations

import torch

from dualseg.config import load_config
from dualseg.engine.trainer import Trainer, _move


def test_drfl_light_all_loss_terms_fall(data_root, tmp_path):
    cfg = load_config(
        "configs/isbi2012/drfl_light.yaml",
        [f"data.root={data_root / 'isbi2012'}", f"output_dir={tmp_path / 'run'}", "data.patch_size=[128, 128]",
         "train.precision=fp32", "train.threads=2", "train.batch_size=2"],
    )
    trainer = Trainer(cfg, progress=False)
    trainer._setup()
    batch = _move(next(iter(trainer._loader(0))), trainer.device)
    assert batch["image"].shape[-1] == 64 and batch["hr_image"].shape[-1] == 128 and batch["mask"].shape[-1] == 64
    history = []
    for _ in range(6):
        outputs = trainer.model(batch["image"])
        assert outputs["sr"].shape == batch["hr_image"].shape
        loss, parts = trainer.loss_fn(outputs, batch)
        history.append(parts)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    first, last = history[0], history[-1]
    for group in (("bce@seg_stream", "dice@seg_stream"), ("l1",), ("bce@seg", "dice@seg")):  # L_seg, L_sr, L_fusion
        assert sum(last[k] for k in group) < sum(first[k] for k in group), group
    assert torch.isfinite(torch.tensor(list(last.values()))).all()
