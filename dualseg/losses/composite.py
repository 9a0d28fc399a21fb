"""Weighted sums of registered losses, each applied to one model output and one batch entry."""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from torch import Tensor, nn

from dualseg.errors import DualsegError, did_you_mean
from dualseg.registry import LOSSES


@dataclass
class LossTerm:
    """One term ``weight * loss(outputs[output], batch[target], batch.get(valid))``.

    ``name`` is a registered loss, ``kwargs`` its options. ``target`` is the batch key of the reference
    (``"mask"``; e.g. ``"hr_image"`` for a super-resolution loss). When ``output`` names a list of tensors (e.g.
    ``"heads"``), the loss is applied to each and the values are summed. ``valid`` is the batch key of the optional
    mask of pixels that count (``"fov"``; skipped when the batch has no such key; ``None`` never uses one).
    """

    name: str
    weight: float = 1.0
    output: str = "seg"
    target: str = "mask"
    valid: str | None = "fov"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DualsegError(f"loss name must be a non-empty string, got {self.name!r}")
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise DualsegError(f"loss '{self.name}': weight must be a finite number >= 0, got {w!r}")
        self.weight = float(w)
        for key in ("output", "target"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise DualsegError(
                    f"loss '{self.name}': '{key}' must be a non-empty string, got {getattr(self, key)!r}"
                )
        if self.valid is not None and not isinstance(self.valid, str):
            raise DualsegError(f"loss '{self.name}': 'valid' must be a batch key or null, got {self.valid!r}")
        if not isinstance(self.kwargs, Mapping):
            raise DualsegError(f"loss '{self.name}': 'kwargs' must be a mapping of options, got {self.kwargs!r}")
        self.kwargs = dict(self.kwargs)


TERM_KEYS: tuple[str, ...] = tuple(f.name for f in fields(LossTerm))


def _term_keys(terms: Sequence[LossTerm]) -> list[str]:
    """Logging keys: the loss name, ``name@output`` when a name repeats, ``#i`` suffix if still ambiguous."""
    by_name = Counter(t.name for t in terms)
    keys = [t.name if by_name[t.name] == 1 else f"{t.name}@{t.output}" for t in terms]
    by_key = Counter(keys)
    return [k if by_key[k] == 1 else f"{k}#{i}" for i, k in enumerate(keys)]


def sum_over_items(loss: nn.Module, outputs: Sequence[Tensor], target: Tensor, valid: Tensor | None) -> Tensor:
    """``sum_i loss(outputs[i], target, valid)``: one term over every tensor of a list output (deep supervision with
    additive head losses, as CASCADE/DANIE)."""
    if not outputs:
        raise DualsegError("the model output is an empty list")
    values = [loss(o, target, valid) for o in outputs]
    return values[0] if len(values) == 1 else sum(values[1:], values[0])


class CompositeLoss(nn.Module):
    """Weighted sum of loss terms. ``forward(outputs, batch)`` returns ``(total, {key: unweighted value})``."""

    def __init__(self, terms: Sequence[LossTerm]) -> None:
        super().__init__()
        if not terms:
            raise DualsegError("a loss needs at least one term")
        self.terms = list(terms)
        self.keys = _term_keys(self.terms)
        losses = []
        for key, term in zip(self.keys, self.terms):
            try:
                losses.append(LOSSES.build(term.name, **term.kwargs))
            except DualsegError as e:
                raise DualsegError(f"loss term '{key}': {e}") from None
        self.losses = nn.ModuleList(losses)

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, float]]:
        total: Tensor | None = None
        values: dict[str, float] = {}
        for key, term, loss in zip(self.keys, self.terms, self.losses):
            if term.output not in outputs:
                raise DualsegError(
                    f"loss term '{key}' uses model output '{term.output}'{did_you_mean(term.output, outputs)}, "
                    f"but the model returns: {', '.join(outputs) or 'nothing'}"
                )
            if term.target not in batch:
                raise DualsegError(
                    f"loss term '{key}' uses batch entry '{term.target}'{did_you_mean(term.target, batch)}, "
                    f"but the batch holds: {', '.join(batch) or 'nothing'}"
                )
            valid = batch.get(term.valid) if term.valid is not None else None
            output = outputs[term.output]
            try:
                if isinstance(output, (list, tuple)):  # a list output such as DANIE's "heads": the sum over its items
                    value = sum_over_items(loss, output, batch[term.target], valid)
                else:
                    value = loss(output, batch[term.target], valid)
            except DualsegError as e:
                raise DualsegError(f"loss term '{key}' (output '{term.output}'): {e}") from None
            weighted = value * term.weight
            total = weighted if total is None else total + weighted
            values[key] = float(value.detach())
        assert total is not None
        return total, values

    def extra_repr(self) -> str:
        return ", ".join(f"{k}: weight={t.weight}, output={t.output!r}" for k, t in zip(self.keys, self.terms))


def build_loss(spec: Sequence[Mapping[str, Any]]) -> CompositeLoss:
    """Build a ``CompositeLoss`` from config, e.g. ``[{"name": "ce"}, {"name": "dice", "kwargs": {"smooth": 1e-5}}]``.

    Keys per term: ``name`` (required), ``weight`` (1.0), ``output`` ("seg"), ``target`` ("mask"),
    ``valid`` ("fov"), ``kwargs`` ({}). Unknown keys, names or options raise DualsegError.
    """
    if isinstance(spec, (Mapping, str)) or not isinstance(spec, Sequence):
        raise DualsegError(f"a loss spec must be a list of terms like [{{name: ce}}], got {spec!r}")
    terms = []
    for i, entry in enumerate(spec):
        if not isinstance(entry, Mapping):
            raise DualsegError(f"loss term {i} must be a mapping with a 'name', got {entry!r}")
        if "name" not in entry:
            raise DualsegError(f"loss term {i} has no 'name'; known losses: {', '.join(LOSSES.names())}")
        name = entry["name"]
        builder = LOSSES.get(name)
        for key in entry:
            if key not in TERM_KEYS:
                hint = did_you_mean(key, TERM_KEYS)
                if key in inspect.signature(builder).parameters:
                    hint = f" (loss options go under 'kwargs': {{kwargs: {{{key}: ...}}}})"
                raise DualsegError(
                    f"loss term {i} ('{name}') has unknown key '{key}'{hint}; valid keys: {', '.join(TERM_KEYS)}"
                )
        terms.append(LossTerm(**dict(entry)))
    return CompositeLoss(terms)
