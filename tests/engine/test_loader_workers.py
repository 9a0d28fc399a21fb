"""DataLoader settings: persistent worker processes draw the same batches, epoch after epoch, as the main process."""

from __future__ import annotations

import torch

from dualseg.config import load_config
from dualseg.engine.trainer import Trainer, loader_workers


def _batches(data_root, out, *extra) -> list[list[dict]]:
    cfg = load_config(None, [
        f"data.root={data_root / 'isbi2012'}", f"output_dir={out}", "model.args={channels: [8, 16]}",
        "data.patch_size=[32, 32]", "data.augment.affine=1.0", "train.batch_size=2", "train.iters_per_epoch=2",
        "train.threads=1", *extra,
    ])
    trainer = Trainer(cfg, progress=False)
    trainer._setup()
    return [list(trainer._loader(epoch)) for epoch in range(2)]


def test_persistent_workers_repeat_the_main_process_batches(data_root, tmp_path):
    main = _batches(data_root, tmp_path / "a", "data.num_workers=0")
    workers = _batches(data_root, tmp_path / "b", "data.num_workers=2", "data.persistent_workers=true")
    assert not torch.equal(main[0][0]["image"], main[1][0]["image"])  # epochs differ ...
    for epoch in range(2):  # ... and workers that never saw set_epoch reproduce each epoch
        for a, b in zip(main[epoch], workers[epoch], strict=True):
            assert a["name"] == b["name"]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])


def test_default_worker_count():
    assert loader_workers(None, torch.device("cpu")) == 0
    assert loader_workers(3, torch.device("cpu")) == 3
    assert 0 <= loader_workers(None, torch.device("cuda")) <= 4
