"""Data-parallel training on PyTorch's own engine: ``torchrun ... -m dualseg train CONFIG``.

torchrun starts one process per device and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`process_group`
reads them, joins the group (NCCL on GPUs, gloo on CPU) and leaves it again, also on errors. Without those variables
(a plain ``dualseg train``) everything here is a no-op and the trainer runs as a single process.

What each rank does (see docs/performance.md):

* every rank builds the same model (same seed), wraps it in ``DistributedDataParallel`` (gradients are averaged by
  all-reduce, so the replicas stay identical) and trains on its own share of every global batch: the effective batch
  is ``train.batch_size x WORLD_SIZE``;
* the sampling order is the single-process one drawn ``WORLD_SIZE`` times longer, rank ``r`` taking every
  ``WORLD_SIZE``-th index from ``r`` (:class:`EpochSampler`); augmentation stays a function of (seed, epoch, index),
  so a resumed run repeats exactly with the same world size;
* batch-norm buffers are broadcast from rank 0 after every epoch, so validation and checkpoints see one model;
* validation is sharded: rank ``r`` evaluates images ``r, r + WORLD_SIZE, ...``, the per-image confusion counts are
  gathered and summarised in the original image order, which gives exactly the single-process numbers;
* only rank 0 writes files (run directory, checkpoints, metrics.csv, TensorBoard, curves) and prints.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import RandomSampler, Sampler

from dualseg.errors import DualsegError

TIMEOUT_MIN = 60  # a collective waits this long for the slowest rank before the run fails


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set a world of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Rank 0, or a single process; readable before and after the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def _backend(device_setting: str) -> str:
    cuda = torch.cuda.is_available() and device_setting != "cpu"
    return "nccl" if cuda else "gloo"


@contextlib.contextmanager
def process_group(device_setting: str = "auto") -> Iterator[None]:
    """Join the process group torchrun describes (if any) for the duration; leave it on exit and on errors.

    Args:
        device_setting: ``train.device``; 'cpu' forces gloo, otherwise NCCL is used when CUDA is available.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield
        return
    if device_setting == "cuda" and not torch.cuda.is_available():
        raise DualsegError("train.device is 'cuda' but no CUDA GPU is available; use --set train.device=cpu (or auto)")
    backend = _backend(device_setting)
    if backend == "nccl":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise DualsegError(
                f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPU(s); start torchrun with "
                "--nproc_per_node at most the number of GPUs"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=TIMEOUT_MIN))
    try:
        yield
        dist.barrier()  # no rank tears down its group while another still uses it (gloo aborts the process then)
    finally:
        dist.destroy_process_group()


@dataclass(frozen=True)
class DistContext:
    """This process's place in the world; ``world_size == 1`` means a plain single-process run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` on GPUs, the given device otherwise."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """The mean over ranks of each value (every rank passes the same keys)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}

    def all_true(self, flag: bool, device: torch.device) -> bool:
        """True when ``flag`` holds on every rank (so that all ranks take the same branch)."""
        if not self.enabled:
            return flag
        t = torch.tensor([0 if flag else 1], dtype=torch.int32, device=device)
        dist.all_reduce(t)
        return int(t.item()) == 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.enabled:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out


def current() -> DistContext:
    """The context of this process: from the initialised process group, else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    return DistContext(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())


class EpochSampler(Sampler):
    """The trainer's sampling order for one rank, yielding ``(epoch, index)`` pairs.

    Epoch ``e`` draws ``num_samples x world_size`` indices with ``RandomSampler`` seeded by (seed, e): for a single
    process exactly the order the trainer always used. Rank ``r`` takes positions ``r, r + world_size, ...``. The
    epoch travels with each index, so the dataset's augmentation (a function of seed, epoch and index) is right in
    persistent DataLoader workers too, whose copies of the dataset never see ``set_epoch``.
    """

    def __init__(self, dataset_len: int, num_samples: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.dataset_len = dataset_len
        self.num_samples = num_samples
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Position at ``epoch``, skipping this rank's first ``start`` samples (a run resumed inside an epoch)."""
        self.epoch = epoch
        self.start = start

    def __len__(self) -> int:
        return self.num_samples - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = list(RandomSampler(range(self.dataset_len), num_samples=self.num_samples * self.world_size,
                                   generator=generator))
        return iter([(self.epoch, i) for i in order[self.rank::self.world_size][self.start:]])


def wrap_model(
    model: nn.Module, ctx: DistContext, device: torch.device, sync_batchnorm: bool, find_unused_parameters: bool = True
) -> nn.Module:
    """The module to train: ``model`` itself for one process, else a ``DistributedDataParallel`` wrapper of it.

    ``model`` stays the plain module (checkpoints, evaluation); the wrapper shares its parameters.
    ``sync_batchnorm`` converts BatchNorm layers to ``SyncBatchNorm`` first (statistics over the global batch).
    ``find_unused_parameters`` lets a step leave parameters without gradients (model outputs that no loss term
    reads, e.g. deep-supervision heads or a dual-stream model's extra outputs); DDP would fail on them otherwise.
    """
    if not ctx.enabled:
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise DualsegError(
                "train.sync_batchnorm needs CUDA GPUs (PyTorch's SyncBatchNorm has no CPU version); "
                "set train.sync_batchnorm=false for CPU runs"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces the BatchNorm children in place
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def broadcast_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank.

    DDP broadcasts them before each forward, but every rank then updates them with its own batch, so after the last
    step of an epoch they differ; validation and checkpoints use rank 0's.
    """
    if not ctx.enabled:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names and bytes of a state dict's tensors, in key order (device and layout independent)."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().to("cpu").contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_replicas(model: nn.Module, ctx: DistContext) -> str:
    """The digest of ``model``'s state; raises when any rank's weights differ from rank 0's."""
    digest = state_digest(model.state_dict())
    digests = ctx.gather(digest)
    if len(set(digests)) != 1:
        differing = [r for r, d in enumerate(digests) if d != digests[0]]
        raise DualsegError(f"the model replicas diverged: ranks {differing} differ from rank 0 (a bug: please report)")
    return digest


class _Shard:
    """The images ``indices`` of an evaluation dataset, seen as a dataset of their own."""

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.description = dataset.description
        self.samples = [dataset.samples[i] for i in indices]
        self._dataset = dataset
        self._indices = list(indices)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> dict:
        return self._dataset[self._indices[i]]


def evaluate_sharded(evaluate, model: nn.Module, dataset, ctx: DistContext, **kwargs: Any) -> dict:
    """``evaluate(model, dataset, **kwargs)`` with the images split over ranks; the summary of all images.

    Each rank evaluates every ``world_size``-th image; the per-image confusion counts are gathered and summarised
    again in the dataset's order, so the result equals a single-process evaluation.
    """
    if not ctx.enabled:
        return evaluate(model, dataset, **kwargs)
    return merge_shards(ctx.gather(evaluate_shard(evaluate, model, dataset, ctx.rank, ctx.world_size, **kwargs)),
                        dataset)


def evaluate_shard(evaluate, model: nn.Module, dataset, rank: int, world_size: int, **kwargs: Any) -> dict[str, Any]:
    """Rank ``rank``'s part: ``rows`` of (index, name, (L, 4) counts) for images ``rank, rank + world_size, ...``."""
    from dualseg.metrics.confusion import COUNT_NAMES

    indices = list(range(rank, len(dataset), world_size))
    part: dict[str, Any] = {"rows": []}
    if indices:
        summary = evaluate(model, _Shard(dataset, indices), **kwargs)
        classes = summary["classes"]
        part.update(classes=classes, fov=summary["fov"], threshold=summary.get("threshold"))
        for index, row in zip(indices, summary["per_image"]):
            counts = np.array([[row["counts"][c][k] for k in COUNT_NAMES] for c in classes], dtype=np.int64)
            part["rows"].append((index, row["name"], counts))
    return part


def merge_shards(parts: Sequence[dict[str, Any]], dataset) -> dict:
    """The summary of every rank's rows, in the dataset's image order."""
    from dualseg.metrics import summarize

    rows = sorted((r for p in parts for r in p["rows"]), key=lambda r: r[0])
    classes = next(p["classes"] for p in parts if "classes" in p)
    summary = summarize([r[2] for r in rows], [r[1] for r in rows], classes, dataset.description.foreground)
    summary["fov"] = any(p.get("fov", False) for p in parts)
    summary["threshold"] = next(p["threshold"] for p in parts if "classes" in p)
    return summary


def seed_rank(ctx: DistContext, seed: int, epoch: int) -> None:
    """Give every rank its own torch random stream for ``epoch`` (dropout), a function of (seed, epoch, rank).

    Without this all ranks would share one stream (same seed) and draw the same dropout masks; reseeding per epoch
    also keeps a resumed multi-process run exact. A single process keeps its stream as it is.
    """
    if ctx.enabled:
        digest = hashlib.blake2b(f"{seed}:{epoch}:{ctx.rank}".encode(), digest_size=8).digest()
        torch.manual_seed(int.from_bytes(digest, "little"))
