"""``dualseg fetch-data``: download (resumable), verify, extract and convert a public dataset, then check it.

Nothing half-made is installed: the dataset is built in a temporary folder beside ``dest`` and renamed into place
only after the checksums matched, the conversion finished and ``check-data`` found no problem. Downloads go to
``.<dest>.downloads/`` beside ``dest`` as ``<file>.part`` while incomplete, so an interrupted download resumes
(HTTP Range) when the same command runs again; that folder is removed once the dataset is installed, and a file
whose checksum does not match is deleted at once.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dualseg.data.check import DataReport, check_data
from dualseg.data.conversion import CONVERTERS
from dualseg.data.fetch_catalog import CatalogEntry, Resource, get_entry
from dualseg.errors import DualsegError
from dualseg.progress import progress_bar

CHUNK = 1 << 20
Log = Callable[[str], None]


@dataclass
class FetchResult:
    dest: Path
    report: DataReport
    notes: list[str] = field(default_factory=list)


# --- download and verification ---------------------------------------------------------------------------------


def file_digests(path: Path) -> dict[str, str]:
    """SHA-256 and MD5 of a file, read once."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def download(url: str, target: Path, progress: bool = True) -> Path:
    """Download ``url`` to ``target`` through ``target.part``; a ``.part`` left by an interrupted run is resumed
    with an HTTP Range request (started over when the server ignores the range)."""
    if target.is_file():
        return target
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "dualseg-fetch-data"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part already holds the whole file; the checksum decides
            os.replace(part, target)
            return target
        raise DualsegError(f"download of {url} failed: HTTP {e.code} {e.reason}; check the URL or use --from") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DualsegError(
            f"cannot reach {url} ({reason}); check the network, pass a mirror with --url, or download the file "
            "yourself and pass it with --from"
        ) from e
    with response:
        if offset and response.status != 206:
            offset = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        written = offset
        try:
            with open(part, "ab" if offset else "wb") as f, progress_bar(
                total=total, initial=offset, unit="B", unit_scale=True, desc=target.name, enabled=progress
            ) as bar:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
        except (http.client.IncompleteRead, OSError) as e:
            written = part.stat().st_size
            raise DualsegError(
                f"download of {url} interrupted after {written} of {total or '?'} bytes ({e}); run the same "
                "command again to resume"
            ) from e
    if total is not None and written < total:
        raise DualsegError(
            f"download of {url} interrupted after {written} of {total} bytes; run the same command again to resume"
        )
    os.replace(part, target)
    return target


def _expected(resource: Resource) -> tuple[str, str]:
    return ("sha256", resource.sha256.lower()) if resource.sha256 else ("md5", (resource.md5 or "").lower())


def verify(resource: Resource, path: Path, url: str, allow_unverified: bool, log: Log) -> None:
    """Compare the file with the catalogue's SHA-256 (or MD5); a mismatch deletes the file and raises."""
    got = file_digests(path)
    if not resource.verified:
        log(f"{path.name}: no published checksum; SHA-256 {got['sha256']}")
        if not allow_unverified:
            raise DualsegError(
                f"{resource.filename} from {url} has no published checksum (SHA-256 {got['sha256']}); re-run with "
                "--allow-unverified to use it (the downloaded file is kept until then)"
            )
        return
    kind, expected = _expected(resource)
    if got[kind] != expected:
        path.unlink()
        raise DualsegError(
            f"checksum mismatch for {resource.filename} from {url}: expected {kind} {expected}, got {got[kind]}; "
            "the file was deleted and nothing was installed (retry, or the source has changed)"
        )
    log(f"{path.name}: {kind} OK ({resource.checksum_source})")


# --- extraction ------------------------------------------------------------------------------------------------


def unpack(path: Path, into: Path) -> None:
    """Extract a zip or tar archive into ``into`` (members may not leave it); other files are copied."""
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            root = into.resolve()
            for member in zf.namelist():
                if not (into / member).resolve().is_relative_to(root):
                    raise DualsegError(f"{path}: archive member '{member}' points outside the extraction folder")
            zf.extractall(into)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            try:
                tf.extractall(into, filter="data")
            except tarfile.FilterError as e:
                raise DualsegError(f"{path}: unsafe archive member ({e})") from e
    else:
        shutil.copy2(path, into / path.name)


# --- the whole fetch -------------------------------------------------------------------------------------------


def _check_dest(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DualsegError(f"{dest} already exists and is not empty; remove it or choose another --dest")
    if not dest.parent.is_dir():
        raise DualsegError(f"the parent folder of --dest does not exist: {dest.parent}")


def downloads_folder(dest: Path) -> Path:
    """Where downloads (and ``.part`` files to resume) live until the dataset is installed."""
    return dest.parent / f".{dest.name}.downloads"


def _gather_sources(
    entry: CatalogEntry,
    dest: Path,
    sources: Sequence[Path],
    urls: dict[str, str],
    allow_unverified: bool,
    progress: bool,
    log: Log,
) -> list[Path]:
    if sources:
        missing = [str(s) for s in sources if not s.exists()]
        if missing:
            raise DualsegError(f"--from path(s) not found: {', '.join(missing)}")
        by_name = {r.filename: r for r in entry.resources}
        for s in sources:
            if s.is_file() and s.name in by_name and by_name[s.name].verified:  # the published file: check it
                kind, expected = _expected(by_name[s.name])
                got = file_digests(s)
                if got[kind] == expected:
                    log(f"{s.name}: {kind} OK")
                elif allow_unverified:
                    log(f"{s.name}: not the published file ({kind} {got[kind]}); used as --allow-unverified says")
                else:
                    raise DualsegError(
                        f"checksum mismatch for {s}: expected {kind} {expected}, got {got[kind]}; not the published "
                        "file (nothing was installed); a re-packed copy you trust can be used with --allow-unverified"
                    )
        return list(sources)
    if entry.registration is not None and not entry.resources:
        raise DualsegError(f"{entry.name} cannot be downloaded directly: {entry.registration}")
    unknown = sorted(set(urls) - {r.filename for r in entry.resources})
    if unknown:
        raise DualsegError(
            f"--url names unknown file(s) {unknown}; {entry.name} downloads {[r.filename for r in entry.resources]}"
        )
    folder = downloads_folder(dest)
    folder.mkdir(exist_ok=True)
    files = []
    for resource in entry.resources:
        url = urls.get(resource.filename, resource.url)
        try:
            path = download(url, folder / resource.filename, progress)
        except DualsegError as e:
            if resource.optional:
                log(f"skipped optional {resource.filename}: {e}")
                continue
            raise
        verify(resource, path, url, allow_unverified, log)
        files.append(path)
    return files


def fetch_dataset(
    name_or_entry: str | CatalogEntry,
    dest: str | Path,
    sources: Sequence[str | Path] = (),
    urls: dict[str, str] | None = None,
    allow_unverified: bool = False,
    progress: bool = True,
    log: Log = print,
) -> FetchResult:
    """Download (or take ``sources``), verify, extract, convert and check a dataset, then move it to ``dest``.

    Args:
        name_or_entry: a catalogue name (or alias) or an entry.
        dest: the dataset folder to create (must not exist or be empty).
        sources: local archives/folders to use instead of downloading (datasets behind a registration).
        urls: mirror URLs by file name (``{"train-volume.tif": "https://..."}``); checksums still apply.
        allow_unverified: accept files without a published checksum (their SHA-256 is printed).
    """
    entry = get_entry(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
    dest = Path(dest).absolute()
    _check_dest(dest)
    files = _gather_sources(entry, dest, [Path(s) for s in sources], dict(urls or {}), allow_unverified, progress,
                            log)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        raw, out = work / "raw", work / dest.name
        roots = [raw]
        for f in files:
            if f.is_dir():
                roots.append(f)
            else:
                log(f"unpacking {f.name}")
                unpack(f, raw / f.name.split(".")[0])
        out.mkdir()
        notes = CONVERTERS.pick(entry.converter)(roots, out, progress)
        report = check_data(out, entry.description, progress=progress)
        if report.problems:
            shown = "; ".join(report.problems[:5])
            raise DualsegError(f"the converted {entry.name} dataset has problems ({shown}); nothing was installed")
        _write_provenance(entry, out, files, notes)
        if dest.is_dir():
            dest.rmdir()
        os.rename(out, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not sources:
        shutil.rmtree(downloads_folder(dest), ignore_errors=True)
    report.root = dest
    return FetchResult(dest, report, notes)


def _write_provenance(entry: CatalogEntry, out: Path, files: Sequence[Path], notes: list[str]) -> None:
    lines = [
        f"# {entry.title}",
        "",
        f"- Fetched by `dualseg fetch-data {entry.name}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"- Homepage: {entry.homepage}",
        f"- Licence: {entry.licence}",
        f"- Sources: {', '.join(f.name for f in files)}",
        f"- Conversion: {entry.conversion}",
        f"- Result: {'; '.join(notes)}",
    ]
    (out / "DATASET.md").write_text("\n".join(lines) + "\n")
