"""Train/val/test splits: the dataset's default, seeded fractions, seeded k-fold, or a JSON file.

Every strategy is group-aware: when the dataset description defines a group key (ACDC patient, CVC-ClinicDB video
sequence), all images of one group land in the same split, and fractions count groups. The test set is chosen first
(the official one where it exists, else a seeded fraction) and never overlaps validation.

A split protocol (:data:`PROTOCOLS`, ``data.split.protocol``) also fixes how many seeded copies of each image the
dataset holds (:mod:`dualseg.data.copies`) and splits them with :func:`rotating_test_split`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dualseg.errors import DualsegError, did_you_mean

SPLIT_NAMES = ("train", "val", "test")
STRATEGIES = ("default", "random", "kfold", "file")


@dataclass(frozen=True)
class SplitProtocol:
    """A paper's evaluation protocol: ``copies`` seeded copies of every image, split by :func:`rotating_test_split`
    with the given fractions, either copy by copy (``by_source=False``: copies of one image can land in different
    splits) or keeping all copies of one image (and of one dataset group) in one split."""

    name: str
    copies: int
    by_source: bool
    val_fraction: float
    test_fraction: float


PROTOCOLS = {
    p.name: p
    for p in (
        # DRFL Sec. 4.4 / Table 3: 30 ISBI 2012 slices x 10 copies = 300 images, split 210/30/60 image by image
        SplitProtocol("drfl_leaky", copies=10, by_source=False, val_fraction=0.1, test_fraction=0.2),
        # the same 300 images, all copies of a slice in one split: 21/3/6 slices
        SplitProtocol("drfl_clean", copies=10, by_source=True, val_fraction=0.1, test_fraction=0.2),
    )
}


def get_protocol(name: str) -> SplitProtocol:
    if name not in PROTOCOLS:
        raise DualsegError(
            f"unknown split protocol '{name}'{did_you_mean(name, PROTOCOLS)}; choose one of {', '.join(PROTOCOLS)}"
        )
    return PROTOCOLS[name]


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


def rotating_test_split(
    stems: Sequence[str],
    *,
    fold: int,
    folds: int,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    group_key: Callable[[str], str] | None = None,
) -> dict[str, list[str]]:
    """Cross-validation that moves the test set: the groups are shuffled once (``seed``), fold ``f`` tests on the
    ``f``-th block of ``round(test_fraction * G)`` groups and validates on ``round(val_fraction * G)`` groups drawn
    from the rest (seeded by ``seed`` and ``f``). Test blocks of different folds never overlap, so ``folds =
    1 / test_fraction`` tests every group exactly once."""
    groups = _groups(stems, group_key)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_test, n_val = round(test_fraction * len(keys)), round(val_fraction * len(keys))
    if folds < 2 or not 0 <= fold < folds or folds * n_test > len(keys):
        raise DualsegError(
            f"this split needs 2 <= folds <= {len(keys) // max(n_test, 1)} and 0 <= fold < folds (disjoint test "
            f"blocks of {n_test} of {len(keys)} groups), got folds={folds}, fold={fold}"
        )
    test_keys = keys[fold * n_test : (fold + 1) * n_test]
    rest = [k for k in keys if k not in set(test_keys)]
    val_keys = set(random.Random(f"{seed}:{fold}").sample(rest, n_val))
    pick = {"train": [k for k in rest if k not in val_keys], "val": sorted(val_keys), "test": test_keys}
    return {name: sorted(s for k in ks for s in groups[k]) for name, ks in pick.items()}


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
    from dualseg.safety.atomic import atomic_write_text

    atomic_write_text(Path(path), json.dumps({**split, "meta": meta or {}}, indent=1))
