"""Train/val/test splits: the dataset's default, seeded fractions, seeded k-fold, or a JSON file.

Every strategy is group-aware: when the dataset description defines a group key (ACDC patient, CVC-ClinicDB video
sequence), all images of one group land in the same split, and fractions count groups. The test set is chosen first
(the official one where it exists, else a seeded fraction) and never overlaps validation.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from dualseg.errors import DualsegError

SPLIT_NAMES = ("train", "val", "test")
STRATEGIES = ("default", "random", "kfold", "file")


def _groups(stems: Sequence[str], group_key: Callable[[str], str] | None) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for stem in sorted(stems):
        groups.setdefault(group_key(stem) if group_key else stem, []).append(stem)
    return groups


def _take_fraction(groups: dict[str, list[str]], fraction: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """Shuffle the groups and take ``round(fraction * number of groups)`` of them (at least one if fraction > 0).

    Fractions count groups (patients, sequences), not images; without a group key every image is its own group.
    """
    keys = sorted(groups)
    rng.shuffle(keys)
    n = round(fraction * len(keys))
    if fraction > 0 and len(keys) > 1:
        n = min(max(n, 1), len(keys) - 1)
    return keys[:n], keys[n:]


def make_split(
    stems: Sequence[str],
    strategy: str = "default",
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    folds: int = 5,
    fold: int = 0,
    file: str | Path | None = None,
    group_key: Callable[[str], str] | None = None,
    official_test: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Split ``stems`` into train/val/test lists (sorted). See the module docstring for the rules."""
    if strategy not in STRATEGIES:
        raise DualsegError(f"unknown split strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}")
    if strategy == "file":
        if not file:
            raise DualsegError("split strategy 'file' needs data.split.file (a JSON file with train/val/test lists)")
        return load_split(file, stems)
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1:
        raise DualsegError("data.split.val_fraction and test_fraction must lie in [0, 1)")
    rng = random.Random(seed)
    groups = _groups(stems, group_key)
    if official_test is not None:
        test_set = set(official_test)
        test = [s for s in stems if s in test_set]
        rest = {k: v for k, v in groups.items() if not set(v) & test_set}
    else:
        test_keys, rest_keys = _take_fraction(groups, test_fraction, rng)
        test = [s for k in test_keys for s in groups[k]]
        rest = {k: groups[k] for k in rest_keys}
    if strategy == "kfold":
        if folds < 2 or not 0 <= fold < folds:
            raise DualsegError(f"k-fold needs folds >= 2 and 0 <= fold < folds, got folds={folds}, fold={fold}")
        keys = sorted(rest)
        rng.shuffle(keys)
        val_keys = keys[fold::folds]
    else:
        val_keys, _ = _take_fraction(rest, val_fraction, rng)
    val = [s for k in val_keys for s in rest[k]]
    train = [s for k in rest if k not in set(val_keys) for s in rest[k]]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def load_split(path: str | Path, stems: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Read a split JSON file; stems it names that are not in the dataset are an error."""
    path = Path(path)
    if not path.is_file():
        raise DualsegError(f"split file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DualsegError(f"split file {path} is not valid JSON: {e}") from e
    split = {name: sorted(data.get(name, [])) for name in SPLIT_NAMES}
    if stems is not None:
        known = set(stems)
        unknown = [s for name in SPLIT_NAMES for s in split[name] if s not in known]
        if unknown:
            raise DualsegError(f"split file {path} names {len(unknown)} unknown case(s), e.g. '{unknown[0]}'")
    seen: dict[str, str] = {}
    for name in SPLIT_NAMES:
        for s in split[name]:
            if s in seen:
                raise DualsegError(f"split file {path}: '{s}' is in both {seen[s]} and {name}")
            seen[s] = name
    return split


def save_split(split: dict[str, list[str]], path: str | Path, meta: dict | None = None) -> None:
    from dualseg.engine.checkpoint import atomic_write_text

    atomic_write_text(Path(path), json.dumps({**split, "meta": meta or {}}, indent=1))
