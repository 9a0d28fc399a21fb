"""Data-parallel training: two CPU processes (gloo) launched by torchrun train one model.

The launch test checks what DDP promises: training works and the loss falls, every rank ends with the weights rank 0
checkpointed, and the sharded validation gives the numbers of a single-process evaluation of that checkpoint.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import RandomSampler

from dualseg.checkpoint import load_checkpoint
from dualseg.engine.distributed import DistContext, EpochSampler, state_digest, wrap_model
from dualseg.engine.run_evaluation import evaluate_run
from dualseg.engine.trainer import rank_rng_state
from dualseg.errors import DualsegError

REPO = Path(__file__).resolve().parents[2]


def test_one_process_sampler_is_the_trainers_seeded_order():
    sampler = EpochSampler(dataset_len=10, num_samples=14, seed=3)
    sampler.set_epoch(2)
    expected = list(RandomSampler(range(10), num_samples=14, generator=torch.Generator().manual_seed(3 * 100_003 + 2)))
    assert list(sampler) == [(2, i) for i in expected]


def test_ranks_split_each_global_batch_without_overlap():
    whole = EpochSampler(dataset_len=7, num_samples=12, seed=0)  # 12 = 2 ranks x 6
    ranks = [EpochSampler(dataset_len=7, num_samples=6, seed=0, rank=r, world_size=2) for r in range(2)]
    for s in (whole, *ranks):
        s.set_epoch(5)
    order = [i for _, i in whole]
    assert [i for _, i in ranks[0]] == order[0::2] and [i for _, i in ranks[1]] == order[1::2]
    assert len(ranks[0]) == 6


def test_state_digest_sees_any_change():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    before = state_digest(model.state_dict())
    assert state_digest({k: v.clone() for k, v in model.state_dict().items()}) == before
    model[1].running_mean[0] += 1e-6
    assert state_digest(model.state_dict()) != before


def test_sync_batchnorm_on_cpu_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    with pytest.raises(DualsegError, match="sync_batchnorm needs CUDA"):
        wrap_model(model, DistContext(rank=0, world_size=2), torch.device("cpu"), sync_batchnorm=True)
    assert wrap_model(model, DistContext(), torch.device("cpu"), sync_batchnorm=True) is model  # one process


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_two_process_training_on_real_data(data_root, tmp_path):
    out = tmp_path / "run"
    overrides = [
        f"data.root={data_root / 'isbi2012'}", f"output_dir={out}", "model.args={channels: [8, 16, 32]}",
        "data.patch_size=[64, 64]", "train.batch_size=2", "train.iters_per_epoch=4", "train.epochs=3",
        "train.precision=fp32", "train.threads=1", "train.device=cpu", "train.checkpoint_every=3",
    ]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
               "-m", "dualseg", "train", str(REPO / "configs/isbi2012/unet.yaml"), "--no-progress"]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]

    rows = _rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # rank 0 alone wrote the log: one row per epoch
    assert float(rows[-1]["train_loss"]) < 0.9 * float(rows[0]["train_loss"])
    assert all(0.0 <= float(r["data_wait"]) <= 1.0 for r in rows)
    assert log.count("done: 3 epochs") == 1  # rank 0 alone prints

    # every rank computed the digest of its own weights and they agreed; it is the digest of the saved weights
    found = re.search(r"2 replicas identical: model sha256 ([0-9a-f]{64})", log)
    assert found, log[-3000:]
    checkpoint = load_checkpoint(out / "checkpoints/last.pt")
    assert state_digest(checkpoint["model"]) == found.group(1)
    # each rank's RNG state is kept (a resume inside an epoch continues each rank's own dropout stream)
    ranks = checkpoint["rng_ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])
    assert torch.equal(checkpoint["rng"]["torch"], ranks[0]["torch"])
    assert rank_rng_state(checkpoint, 1, 2) is ranks[1] and rank_rng_state(checkpoint, 1, 3) is checkpoint["rng"]

    # sharded validation of the final epoch == a single-process evaluation of the checkpoint
    summary, _ = evaluate_run(out, split="val", which="last", progress=False)
    assert summary["n_images"] == 6
    assert float(rows[-1]["val_dice"]) == round(summary["mean"]["dice"], 6)
    for name, values in summary["per_class"].items():
        assert float(rows[-1][f"val_dice_{name}"]) == round(values["dice"]["mean"], 6)


def test_sharded_evaluation_equals_the_whole(data_root):
    from dualseg.config import load_config
    from dualseg.data.build import make_dataset, prepare_data
    from dualseg.engine.distributed import evaluate_shard, merge_shards
    from dualseg.engine.evaluator import evaluate_dataset
    from dualseg.engine.trainer import build_model_from_config

    cfg = load_config(None, [f"data.root={data_root / 'isbi2012'}", "model.args={channels: [4, 8]}"])
    bundle = prepare_data(cfg)
    dataset = make_dataset(cfg, bundle, "val", train=False)
    torch.manual_seed(0)
    model = build_model_from_config(cfg, bundle.description).eval()
    kwargs = {"eval_cfg": cfg.eval, "device": torch.device("cpu")}
    whole = evaluate_dataset(model, dataset, **kwargs)
    world = len(dataset) + 1  # more ranks than images: the last rank gets none
    parts = [evaluate_shard(evaluate_dataset, model, dataset, r, world, **kwargs) for r in range(world)]
    assert parts[-1]["rows"] == []
    merged = merge_shards(parts[::-1], dataset)  # gathered in any order
    assert merged == whole
