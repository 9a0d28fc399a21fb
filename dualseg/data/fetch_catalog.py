"""The catalogue of ``dualseg fetch-data``: for each public dataset, where it comes from, its checksums and licence.

Each known dataset (:mod:`dualseg.data.datasets`) registers its entry with :func:`register_entry`;
:mod:`dualseg.data.fetch` is the engine. Every checksum names where it was published (``checksum_source``); none was
computed here (this machine has no internet). A resource without a checksum is downloaded only with
``--allow-unverified``, after its SHA-256 is printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dualseg.data.names import NameTable


@dataclass(frozen=True)
class Resource:
    """One file to download: an archive (zip/tar, extracted) or a plain file (kept as it is)."""

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    checksum_source: str = ""
    optional: bool = False  # a missing optional file (``--from``) does not stop the conversion

    @property
    def verified(self) -> bool:
        return bool(self.sha256 or self.md5)


@dataclass(frozen=True)
class CatalogEntry:
    """A dataset: its sources, terms and how the source layout becomes dualseg's ``images/`` + ``masks/``.

    Attributes:
        name: the ``fetch-data`` name.
        title: human-readable name with the reference to cite.
        homepage: the official page.
        licence: the terms as far as known.
        size: approximate download size.
        resources: the files a download fetches; empty when no direct download is known.
        registration: ``None`` for an open download; otherwise where and how to get the files by hand
            (they are then converted with ``--from``).
        conversion: what the conversion does (shown in ``DATASET.md`` and docs/datasets.md).
        converter: the registered converter (:mod:`dualseg.data.conversion`); the entry's name when empty.
        description: the dataset description ``check-data`` uses on the result; the entry's name when empty.
    """

    name: str
    title: str
    homepage: str
    licence: str
    size: str
    conversion: str
    converter: str = ""
    description: str = ""
    resources: tuple[Resource, ...] = ()
    registration: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "converter", self.converter or self.name)
        object.__setattr__(self, "description", self.description or self.name)

    @property
    def checksum_status(self) -> str:
        if not self.resources:
            return "n/a (manual)"
        kinds = {"sha256" if r.sha256 else "md5" if r.md5 else "none" for r in self.resources}
        return "+".join(sorted(kinds))


CATALOG: NameTable[CatalogEntry] = NameTable("dataset", "'dualseg fetch-data --list' shows the known ones ({known})")


def register_entry(entry: CatalogEntry) -> CatalogEntry:
    """Make ``entry`` known to ``dualseg fetch-data`` (by its name and aliases)."""
    return CATALOG.register(entry.name, entry)


def find_entry(name: str) -> CatalogEntry | None:
    """The entry by name or alias (case-insensitive, '-' and '_' alike), or None."""
    key = name.lower().replace("-", "_")
    for entry in CATALOG.values():
        if key == entry.name or key in entry.aliases:
            return entry
    return None


def get_entry(name: str) -> CatalogEntry:
    """The entry by name or alias; an unknown name raises, naming the closest one and ``--list``."""
    entry = find_entry(name)
    return entry if entry is not None else CATALOG.pick(name)
