"""The training engine: knows nothing of any paper; a method is a model + its loss terms + a recipe config.

Run directory layout (``output_dir``)::

    config.yaml          the resolved config
    split.json           the train/val/test stems (reused on resume)
    metrics.csv          one row per epoch: lr, losses, validation metrics, time
    curves.png           loss terms and validation Dice per epoch, when the caller passes
                         dualseg.report.curves.CurvesCallback (dualseg train, cv and demo do)
    tensorboard/         TensorBoard event files
    checkpoints/last.pt  written atomically after every epoch (resume point)
    checkpoints/best.pt  the best validation epoch (``train.monitor``)
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dualseg.checkpoint import load_checkpoint, save_checkpoint
from dualseg.config import Config, config_from_dict, dump_config
from dualseg.data.build import DataBundle, make_dataset, prepare_data, split_meta
from dualseg.data.descriptions import description_to_dict
from dualseg.data.splits import save_split
from dualseg.engine import distributed
from dualseg.engine.callbacks import TrainerCallback
from dualseg.engine.data_wait import DataWait
from dualseg.engine.evaluator import evaluate_dataset
from dualseg.engine.preflight import changed_keys, check_run_inputs
from dualseg.engine.schedules import Schedule
from dualseg.errors import DualsegError
from dualseg.inference.spec import InputSpec
from dualseg.inference.train_scale import run_train_scale
from dualseg.losses import build_loss
from dualseg.models import create_model
from dualseg.progress import progress_bar
from dualseg.runtime import autocast, resolve_device, resolve_precision, rng_state, seed_everything, set_rng_state
from dualseg.safety.atomic import atomic_write_text, remove_stale_temp_files
from dualseg.safety.outputs import writing_into

CHECKPOINT_DIR = "checkpoints"


def build_model_from_config(cfg: Config, description) -> torch.nn.Module:
    """The model of a config; channels and classes default to the dataset description's."""
    in_channels = cfg.model.in_channels or description.channels
    num_classes = cfg.model.num_classes or description.num_classes
    return create_model(cfg.model.name, in_channels=in_channels, num_classes=num_classes, **cfg.model.args)


def make_optimizer(cfg: Config, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    o = cfg.train.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    fused = {"fused": True} if device.type == "cuda" else {}
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay,
                               **fused)
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, **fused)


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    best: float = -math.inf
    best_epoch: int = -1
    stale_epochs: int = 0
    train_seconds: float = 0.0
    epoch_iter: int = 0  # iterations done in the unfinished epoch (a checkpoint inside an epoch: resume from there)
    epoch_sums: dict[str, float] = field(default_factory=dict)  # that epoch's loss sums so far


def rank_rng_state(checkpoint: dict[str, Any], rank: int, world_size: int) -> dict[str, Any]:
    """The RNG state ``rank`` saved, when the checkpoint holds one per rank of a run with as many processes;
    otherwise rank 0's (single-process checkpoints, or resuming with another number of processes)."""
    per_rank = checkpoint.get("rng_ranks")
    return per_rank[rank] if per_rank is not None and len(per_rank) == world_size else checkpoint["rng"]


def _check_run_dir(out: Path, cfg: Config, resume: bool, force: bool) -> Config:
    last = out / CHECKPOINT_DIR / "last.pt"
    if resume:
        if not last.is_file():
            raise DualsegError(f"--resume: no checkpoint at {last}; start a new run without --resume")
        saved = config_from_dict(load_checkpoint(last)["config"])
        if dump_config(saved) != dump_config(cfg) and not force:
            raise DualsegError(
                f"--resume: the config differs from the one {out} was trained with ({changed_keys(saved, cfg)}); "
                "resume with the same config, or add --force to continue with the new one"
            )
        return cfg if force else saved
    if last.is_file():
        raise DualsegError(f"{out} already holds a run; use --resume to continue it, or choose another output_dir")
    return cfg


def _as_float(output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """A model output in float32 for the loss; list outputs (e.g. DANIE's ``"heads"``) element by element."""
    return output.float() if isinstance(output, torch.Tensor) else [t.float() for t in output]


def loader_workers(setting: int | None, device: torch.device) -> int:
    """``data.num_workers``, or by default: 0 on CPU (the model's threads use every core), else up to 4 per GPU."""
    if setting is not None:
        return setting
    if device.type != "cuda":
        return 0
    per_rank = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, min(4, per_rank - 1))


def _move(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    """One training run of ``cfg``; ``callbacks`` are told of each epoch's end and of the run's end."""

    def __init__(self, cfg: Config, resume: bool = False, force: bool = False, progress: bool = True,
                 callbacks: Sequence[TrainerCallback] = ()) -> None:
        self.out = Path(cfg.output_dir)
        self.cfg = _check_run_dir(self.out, cfg, resume, force)
        self.resume = resume
        self.progress = progress
        self.callbacks = list(callbacks)

    # --- setup -------------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed, cfg.train.deterministic)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.dist = distributed.current()
        device = resolve_device(cfg.train.device, "train.device", "--set train.device=cpu (or auto)")
        self.device = self.dist.device(device)
        self.bundle: DataBundle = prepare_data(cfg, self.out / "split.json")
        self.model = build_model_from_config(cfg, self.bundle.description).to(self.device)
        # the one place the input spec is made from the config: stored in every checkpoint, used by validation
        self.spec = InputSpec.from_config(cfg, getattr(self.model, "size_divisor", 1)).with_train_scale(
            *run_train_scale(cfg, self.bundle))
        check_run_inputs(cfg, self.model, self.bundle, self.spec.input_scale)
        self.loss_fn = build_loss(cfg.loss).to(self.device)
        self.train_set = make_dataset(cfg, self.bundle, "train", train=True)
        eval_split = "test" if cfg.train.select_on == "test" else "val"
        if cfg.train.select_on == "test":
            tqdm.write("WARNING: selecting checkpoints on the TEST split (paper reproduction); recorded in the run.")
        self.eval_split = eval_split
        has_eval = bool(self.bundle.split[eval_split])
        self.eval_set = make_dataset(cfg, self.bundle, eval_split, train=False) if has_eval else None
        n = len(self.train_set)
        bs = cfg.train.batch_size
        self.iters = cfg.train.iters_per_epoch or max(1, n // (bs * self.dist.world_size))  # steps of the global batch
        self.optimizer = make_optimizer(cfg, self.model, self.device)
        sched = cfg.train.schedule
        per_iter = sched.step == "iter"
        total = cfg.train.epochs * (self.iters if per_iter else 1)
        warmup = sched.warmup_epochs * (self.iters if per_iter else 1)
        self.schedule = Schedule(self.optimizer, sched, total, warmup)
        self.clock = time.process_time if cfg.train.time_limit_clock == "process" else time.perf_counter
        self.epoch_start = self.clock()  # set again at each epoch's start: the time spent so far is measured from it
        self.time_up = False  # the time limit ran out inside the current epoch
        self.amp_dtype = resolve_precision(self.spec.precision, self.device)
        self.model.to(memory_format=self.spec.memory_format)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.state = TrainState()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.resume:
            self._load(self.out / CHECKPOINT_DIR / "last.pt")
        elif self.dist.is_main:
            atomic_write_text(self.out / "config.yaml", dump_config(cfg))
            save_split(self.bundle.split, self.out / "split.json", split_meta(cfg, self.bundle))
        self.train_model = distributed.wrap_model(self.model, self.dist, self.device, cfg.train.sync_batchnorm,
                                                  cfg.train.ddp_find_unused_parameters)
        self._train_loader: DataLoader | None = None
        self.dist.barrier()

    def _loader(self, epoch: int, start: int = 0) -> DataLoader:
        """The training loader positioned at ``epoch``, iteration ``start`` (one loader for the run: workers can
        persist). The order is a function of seed and epoch only (``distributed.EpochSampler``), and the loader has
        its own generator, so it never draws from the global RNG that dropout uses."""
        self.train_set.set_epoch(epoch)
        bs = self.cfg.train.batch_size
        if self._train_loader is None:
            sampler = distributed.EpochSampler(len(self.train_set), self.iters * bs, self.cfg.seed,
                                               self.dist.rank, self.dist.world_size)
            data = self.cfg.data
            workers = loader_workers(data.num_workers, self.device)
            pin = self.device.type == "cuda" if data.pin_memory is None else data.pin_memory
            self._train_loader = DataLoader(
                self.train_set, batch_size=bs, sampler=sampler, num_workers=workers, drop_last=True,
                pin_memory=pin, persistent_workers=data.persistent_workers and workers > 0,
                generator=torch.Generator().manual_seed(self.cfg.seed),
            )
        self._train_loader.sampler.set_epoch(epoch, start * bs)
        return self._train_loader

    # --- checkpoints --------------------------------------------------------------------------------------------
    def _save(self, name: str) -> None:
        """Write ``checkpoints/<name>``. Called on every rank: each rank's RNG state is gathered (a run resumed inside
        an epoch continues every rank's own dropout stream); rank 0 writes."""
        rngs = self.dist.gather(rng_state())
        if self.dist.is_main:
            save_checkpoint(self._checkpoint_state(rngs), self.out / CHECKPOINT_DIR / name)

    def _checkpoint_state(self, rngs: list[dict[str, Any]]) -> dict[str, Any]:
        s = self.state
        bad = [name for name, p in self.model.state_dict().items() if p.is_floating_point() and not p.isfinite().all()]
        if bad:
            raise DualsegError(
                f"the weights became non-finite ({bad[0]}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}) at "
                f"epoch {s.epoch}; the last good checkpoint is kept. Lower train.optimizer.lr or set train.grad_clip"
            )
        return {
            "format": "dualseg-checkpoint-1",
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs[0],
            **({"rng_ranks": rngs} if len(rngs) > 1 else {}),
            "trainer": {**vars(s), "epoch_sums": dict(s.epoch_sums)},
            "config": self.cfg.to_dict(),
            "model_name": self.cfg.model.name,
            "in_channels": self.model.in_channels,
            "num_classes": self.model.num_classes,
            "description": description_to_dict(self.bundle.description),
            "input": self.spec.to_dict(),
            "select_on": self.cfg.train.select_on,
        }

    def _load(self, path: Path) -> None:
        remove_stale_temp_files(path.parent)
        state = load_checkpoint(path)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise DualsegError(
                f"{path} holds model '{state.get('model_name')}' with {state.get('in_channels')} input channel(s) "
                f"and {state.get('num_classes')} classes, which the config's model cannot load "
                f"({str(e).splitlines()[0][:120]}); --force cannot change the model: start a new run instead"
            ) from e
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(rank_rng_state(state, self.dist.rank, self.dist.world_size))
        self.state = TrainState(**state["trainer"])
        self._truncate_metrics(self.state.epoch)

    def _truncate_metrics(self, epochs_done: int) -> None:
        """Drop metrics.csv rows of epochs after the checkpoint, so a resumed run's log equals an uninterrupted one."""
        path = self.out / "metrics.csv"
        if not path.is_file() or not self.dist.is_main:
            return
        rows = list(csv.reader(path.read_text().splitlines()))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= epochs_done]
        buf = io.StringIO()
        csv.writer(buf).writerows(kept)
        atomic_write_text(path, buf.getvalue())

    def _log_row(self, row: dict[str, Any]) -> None:
        """Append one epoch's row; columns are the union over all rows (epochs without validation leave the
        validation columns empty), so the header always names every column of every row."""
        if not self.dist.is_main:
            return
        path = self.out / "metrics.csv"
        rows = list(csv.DictReader(path.read_text().splitlines())) if path.is_file() else []
        fields = list(rows[0]) if rows else []
        fields += [k for k in row if k not in fields]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows([*rows, row])
        atomic_write_text(path, buf.getvalue())

    # --- the loop -----------------------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        self.model.train()
        start = self.state.epoch_iter
        sums = self.state.epoch_sums
        if cfg.train.nonfinite == "skip":
            sums.setdefault("skipped_steps", 0.0)
        per_iter = cfg.train.schedule.step == "iter"
        if start == 0:  # a run resumed inside an epoch continues the restored random stream
            distributed.seed_rank(self.dist, cfg.seed, epoch)
        bar = progress_bar(self._loader(epoch, start), total=self.iters, initial=start,
                           enabled=self.progress and self.dist.is_main, desc=f"epoch {epoch + 1}/{cfg.train.epochs}")
        wait = DataWait()
        for i, batch in enumerate(bar, start=start):
            wait.batch_ready()
            if per_iter:
                self.schedule.set(self._schedule_position(self.state.step))
            batch = _move(batch, self.device)
            if not cfg.eval.use_fov:
                batch.pop("fov", None)
            image = batch["image"]
            if self.spec.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.amp_dtype):
                outputs = self.train_model(image)
            loss, parts = self.loss_fn({k: _as_float(v) for k, v in outputs.items()}, batch)
            finite = self.dist.all_true(bool(torch.isfinite(loss)), self.device)
            if not finite and cfg.train.nonfinite == "skip":
                if self.dist.is_main:
                    tqdm.write(f"warning: the loss is {float(loss.detach())} at epoch {epoch + 1}, iteration "
                               f"{i + 1}; step skipped (train.nonfinite: skip)")
                sums["skipped_steps"] += 1
                self.state.epoch_iter = i + 1
                if self._out_of_time():
                    break
                continue
            if not finite:
                raise DualsegError(
                    f"the loss became {float(loss.detach())} at epoch {epoch + 1}, iteration {i + 1}; the last good "
                    "checkpoint is kept. Lower train.optimizer.lr, enable train.grad_clip, or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.train.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.state.step += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            wait.step_done()
            bar.set_postfix(loss=f"{sums['loss'] / (i + 1):.4f}", data=f"{wait.fraction:.0%}")
            self.state.epoch_iter = i + 1
            if self._out_of_time():
                break
            every = cfg.train.checkpoint_every
            if every and self.state.step % every == 0 and i + 1 < self.iters:
                self._save("last.pt")
        finite = self.state.epoch_iter - int(sums.get("skipped_steps", 0))  # steps taken (fewer when out of time)
        out = {k: v / max(finite, 1) for k, v in sums.items() if k != "skipped_steps"}
        if "skipped_steps" in sums:
            out["skipped_steps"] = sums["skipped_steps"]
        out["data_wait"] = wait.fraction
        return self.dist.mean(out, self.device)

    def fit(self) -> dict[str, Any]:
        """Train until ``train.epochs``, early stopping or the time limit; return the final trainer state."""
        self._setup()
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        writer = SummaryWriter(str(self.out / "tensorboard")) if self.dist.is_main else None
        s = self.state
        try:
            while s.epoch < cfg.train.epochs or self.by_time:
                if cfg.train.time_limit_min and s.train_seconds >= cfg.train.time_limit_min * 60:
                    tqdm.write(f"time limit reached ({s.train_seconds / 60:.1f} min)")  # also: resumed when spent
                    break
                epoch = s.epoch
                self.epoch_start = self.clock()
                if cfg.train.schedule.step == "epoch":
                    self.schedule.set(self._schedule_position(epoch))
                self.time_up = False
                losses = self._train_epoch(epoch)
                data_wait = losses.pop("data_wait")
                distributed.broadcast_buffers(self.model, self.dist)
                row: dict[str, Any] = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
                row.update({f"train_{k}": round(v, 6) for k, v in losses.items()})
                metrics = self._validate(epoch, last=self.time_up)
                row.update(metrics)
                s.epoch += 1
                s.epoch_iter, s.epoch_sums = 0, {}
                s.train_seconds = self.dist.broadcast(s.train_seconds + self.clock() - self.epoch_start)
                row["data_wait"] = round(data_wait, 4)  # fraction of step time spent waiting for batches
                row["time_s"] = round(s.train_seconds, 1)
                self._select(metrics.get(f"{self.eval_split}_{cfg.train.monitor}"))
                # The log row first, then the checkpoint: a crash between the two is undone on resume (rows after
                # the checkpoint's epoch are dropped), so metrics.csv always matches an uninterrupted run.
                self._log_row(row)
                self._save("last.pt")
                if self.dist.is_main:
                    for k, v in row.items():
                        if k != "epoch" and isinstance(v, int | float):
                            writer.add_scalar(k, v, epoch + 1)
                    msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                    tqdm.write(msg)
                    for callback in self.callbacks:
                        callback.on_epoch_end(self.out, row)
                if cfg.train.early_stopping and s.stale_epochs >= cfg.train.early_stopping:
                    tqdm.write(f"early stopping: no improvement of {cfg.train.monitor} for {s.stale_epochs} epochs")
                    break
        finally:
            if writer is not None:
                writer.close()
        if self.dist.enabled:
            digest = distributed.check_replicas(self.model, self.dist)
            if self.dist.is_main:
                tqdm.write(f"{self.dist.world_size} replicas identical: model sha256 {digest}")
        self.dist.barrier()  # rank 0's checkpoint is on disk before any rank returns
        if self.dist.is_main:
            for callback in self.callbacks:
                callback.on_run_end(self.out, cfg)
        return vars(s)

    def _out_of_time(self) -> bool:
        """Whether ``train.time_limit_min`` is spent, checked after every step (rank 0's clock, so every rank stops
        at the same step); sets ``time_up``, which ends the epoch there and validates it."""
        limit = self.cfg.train.time_limit_min
        if not limit:
            return False
        spent = self.dist.broadcast(self.state.train_seconds + self.clock() - self.epoch_start)
        self.time_up = spent >= limit * 60
        return self.time_up

    @property
    def by_time(self) -> bool:
        """The schedule runs over the time budget (``train.schedule.horizon: time``), not over the epochs."""
        return self.cfg.train.schedule.horizon == "time"

    def _schedule_position(self, step: int) -> float:
        """The schedule's step: ``step`` itself, or with ``horizon: time`` the spent share of the time budget times
        the schedule's length (so poly/cosine/linear_decay reach their end when the budget does; not bit-exact on
        resume, since it follows the clock)."""
        if not self.by_time:
            return step
        spent = self.state.train_seconds + self.clock() - self.epoch_start
        share = self.dist.broadcast(spent / (self.cfg.train.time_limit_min * 60))  # every rank: rank 0's clock
        return min(share, 1.0) * self.schedule.total

    def _validate(self, epoch: int, last: bool = False) -> dict[str, float]:
        """Validation metrics every ``train.val_every`` epochs and after the last one (``last``: ended by time)."""
        cfg = self.cfg
        last_epoch = last or epoch + 1 == cfg.train.epochs
        if self.eval_set is None or ((epoch + 1) % cfg.train.val_every and not last_epoch):
            return {}
        summary = distributed.evaluate_sharded(evaluate_dataset, self.model, self.eval_set, self.dist,
                                               eval_cfg=cfg.eval, device=self.device, spec=self.spec)
        out = {f"{self.eval_split}_{k}": round(v, 6) for k, v in summary["mean"].items() if v is not None}
        for name, values in summary["per_class"].items():
            if values["dice"]["mean"] is not None:
                out[f"{self.eval_split}_dice_{name}"] = round(values["dice"]["mean"], 6)
        return out

    def _select(self, value: float | None) -> None:
        """Keep checkpoints/best.pt for the best monitored value (the last epoch when there is no validation)."""
        s = self.state
        if value is None and self.eval_set is not None:
            return
        improved = value is None or value > s.best
        if value is not None:
            self.schedule.observe(value)
        if improved:
            s.best = -math.inf if value is None else value
            s.best_epoch = s.epoch
            s.stale_epochs = 0
            self._save("best.pt")
        else:
            s.stale_epochs += 1


def _data_folders(cfg: Config) -> list[Path]:
    """The dataset's image and mask folders: a run directory may not be, contain or lie inside them."""
    if not cfg.data.root:
        return []
    root = Path(cfg.data.root)
    return [p for p in (root / (cfg.data.image_dir or "images"), root / (cfg.data.mask_dir or "masks")) if p.is_dir()]


def train(cfg: Config, resume: bool = False, force: bool = False, progress: bool = True,
          callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train ``cfg``; under torchrun, as one rank of a data-parallel run (see dualseg/engine/distributed.py).
    ``callbacks``: see :class:`~dualseg.engine.callbacks.TrainerCallback` (e.g. the curves.png writer of
    :mod:`dualseg.report.curves`).

    Rank 0 holds ``output_dir`` exclusively (a second writer is refused) and follows the output-folder rules of
    :mod:`dualseg.safety.outputs`; a fresh run that fails before its first checkpoint removes what it created (the
    run directory, or its new entries in an existing folder). A run with a checkpoint is kept: it can be resumed."""
    out = Path(cfg.output_dir)
    last = out / CHECKPOINT_DIR / "last.pt"
    with writing_into(out, _data_folders(cfg), overwrite=True if resume else None, lock=out,
                      keep=lambda: resume or last.exists(), enabled=distributed.is_main_process()), \
            distributed.process_group(cfg.train.device):
        return Trainer(cfg, resume=resume, force=force, progress=progress, callbacks=callbacks).fit()
