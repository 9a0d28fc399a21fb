"""What scanning a dataset folder finds, in every layout: its cases (:class:`Sample`) and its named problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One case: its stem and the paths of its image, mask (if any) and field-of-view mask (if any)."""

    stem: str
    image: Path
    mask: Path | None = None
    fov: Path | None = None
    extra_channels: tuple[Path, ...] = ()  # further channel files stacked after ``image`` (nnU-Net _0001, ...)


@dataclass
class FolderScan:
    """The cases found and every layout problem (missing partner, duplicate stem, broken link), by file name."""

    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
