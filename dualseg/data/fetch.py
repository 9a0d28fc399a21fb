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
import re
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

import numpy as np
from PIL import Image

from dualseg.data.check import DataReport, check_data
from dualseg.data.fetch_catalog import CATALOG, CatalogEntry, Resource, find_entry
from dualseg.data.io import IMAGE_EXTENSIONS, read_image, read_mask, write_png_atomic
from dualseg.errors import DualsegError, did_you_mean
from dualseg.progress import progress_bar

CHUNK = 1 << 20
Log = Callable[[str], None]


@dataclass
class FetchResult:
    dest: Path
    report: DataReport
    notes: list[str] = field(default_factory=list)


def get_entry(name: str) -> CatalogEntry:
    entry = find_entry(name)
    if entry is None:
        raise DualsegError(
            f"unknown dataset '{name}'{did_you_mean(name.lower(), CATALOG)}; 'dualseg fetch-data --list' shows "
            f"the known ones ({', '.join(sorted(CATALOG))})"
        )
    return entry


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


# --- conversions to images/ + masks/ ----------------------------------------------------------------------------


def _find_files(roots: Sequence[Path], name: str) -> Path | None:
    for root in roots:
        hits = sorted(p for p in root.rglob(name) if p.is_file())
        if hits:
            return hits[0]
    return None


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _binary(mask: np.ndarray, threshold: int = 128) -> np.ndarray:
    return np.where(mask >= threshold, 255, 0).astype(np.uint8)


def _decoded_gray(path: Path) -> np.ndarray:
    """Grey levels as displayed (palette GIFs decoded through their palette, unlike :func:`read_mask`)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except OSError as e:
        raise DualsegError(f"cannot read image {path}: {e}") from e


def _gray(arr: np.ndarray) -> np.ndarray:
    return arr.mean(axis=-1) if arr.ndim == 3 else arr


def convert_isbi2012(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """Multipage TIFF stacks -> one PNG per slice (images/N.png, masks/N.png 0/255; test -> test_images_unlabeled)."""
    import tifffile

    volume, labels = _find_files(roots, "train-volume.tif"), _find_files(roots, "train-labels.tif")
    if volume is None or labels is None:
        raise DualsegError("ISBI 2012: train-volume.tif and train-labels.tif not found in the download/--from")
    images, masks = tifffile.imread(volume), tifffile.imread(labels)
    if images.ndim != 3 or images.shape != masks.shape:
        raise DualsegError(f"ISBI 2012: expected two (N, H, W) stacks of one shape, got {images.shape}, {masks.shape}")
    for i in progress_bar(range(len(images)), desc="slices", enabled=progress):
        write_png_atomic(images[i], out / "images" / f"{i}.png")
        write_png_atomic(_binary(masks[i]), out / "masks" / f"{i}.png")
    notes = [f"{len(images)} slices"]
    test = _find_files(roots, "test-volume.tif")
    if test is not None:
        for i, image in enumerate(tifffile.imread(test)):
            write_png_atomic(image, out / "test_images_unlabeled" / f"{i}.png")
        notes.append("test stack -> test_images_unlabeled/")
    return notes


def convert_drive(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """DRIVE training/ + test/ -> images/<id>.tif, masks/<id>.png, fov_masks/<id>.png (see the catalogue)."""
    image_files = sorted(p for root in roots for p in root.rglob("images/*.tif") if re.match(r"\d+_(training|test)$",
                                                                                            p.stem))
    if not image_files:
        raise DualsegError("DRIVE: no images/<NN>_training.tif or images/<NN>_test.tif found in --from")
    unlabeled = 0
    for image in progress_bar(image_files, desc="drive", enabled=progress):
        split_dir, number = image.parent.parent, image.stem.split("_")[0]
        manual = split_dir / "1st_manual" / f"{number}_manual1.gif"
        fov = split_dir / "mask" / f"{image.stem}_mask.gif"
        second = split_dir / "2nd_manual" / f"{number}_manual2.gif"
        if not manual.is_file():
            shutil.copy2(image, _mkdir(out / "test_images_unlabeled") / image.name)
            unlabeled += 1
            continue
        shutil.copy2(image, _mkdir(out / "images") / image.name)
        write_png_atomic(_binary(_decoded_gray(manual)), out / "masks" / f"{image.stem}.png")
        if fov.is_file():
            write_png_atomic(_binary(_decoded_gray(fov)), out / "fov_masks" / f"{image.stem}.png")
        if second.is_file():  # its palette decodes to 3/253: thresholded like the others
            write_png_atomic(_binary(_decoded_gray(second)), out / "masks_2nd_observer" / f"{image.stem}.png")
    return [f"{len(image_files) - unlabeled} labelled images"] + ([f"{unlabeled} without labels"] if unlabeled else [])


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


_CVC_FOLDERS = (("Original", "Ground Truth"), ("images", "masks"))


def convert_cvc_clinicdb(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """'Original'/'Ground Truth' (or images/masks) -> images/N.png + masks/N.png (0/255), un-swapping swapped pairs."""
    pair = None
    for root in roots:
        for image_name, mask_name in _CVC_FOLDERS:
            for folder in [root, *sorted(p for p in root.rglob(image_name) if p.is_dir())]:
                base = folder if folder.name != image_name else folder.parent
                if (base / image_name).is_dir() and (base / mask_name).is_dir():
                    pair = (base / image_name, base / mask_name)
                    break
            if pair:
                break
        if pair:
            break
    if pair is None:
        raise DualsegError("CVC-ClinicDB: no 'Original/' + 'Ground Truth/' (or images/ + masks/) folders in --from")
    masks = {p.stem: p for p in _images_in(pair[1])}
    swapped = 0
    for image_path in progress_bar(_images_in(pair[0]), desc="cvc", enabled=progress):
        if image_path.stem not in masks:
            continue
        image, mask = read_image(image_path), read_image(masks[image_path.stem])
        if image.shape[-1] == 1 and mask.shape[-1] >= 3:  # this mirror's folders hold each other's files
            image, mask = mask, image
            swapped += 1
        write_png_atomic(image[..., :3] if image.shape[-1] >= 3 else image[..., 0], out / "images" /
                         f"{image_path.stem}.png")
        write_png_atomic(_binary(_gray(mask[..., :3] if mask.shape[-1] >= 3 else mask[..., 0])),
                         out / "masks" / f"{image_path.stem}.png")
    return [f"{len(masks)} pairs"] + ([f"{swapped} swapped image/mask pairs put back"] if swapped else [])


def convert_kvasir_seg(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """images/*.jpg copied; JPEG masks -> PNG 0/255 (grey mean >= 128)."""
    folder = next((p.parent for root in roots for p in sorted(root.rglob("masks")) if (p.parent / "images").is_dir()),
                  None)
    if folder is None:
        raise DualsegError("Kvasir-SEG: no folder with images/ and masks/ found in the archive/--from")
    masks = {p.stem: p for p in _images_in(folder / "masks")}
    count = 0
    for image in progress_bar(_images_in(folder / "images"), desc="kvasir", enabled=progress):
        if image.stem in masks:
            shutil.copy2(image, _mkdir(out / "images") / image.name)
            write_png_atomic(_binary(_gray(read_image(masks[image.stem]).astype(np.float32))),
                             out / "masks" / f"{image.stem}.png")
            count += 1
    return [f"{count} pairs"]


def convert_dsb2018(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """<id>/images/<id>.png + <id>/masks/*.png -> images/, masks/ (union 0/255), instance_masks/ (16-bit ids)."""
    cases = sorted(
        p.parent.parent for root in roots for p in root.rglob("images/*.png")
        if p.stem == p.parent.parent.name and (p.parent.parent / "masks").is_dir()
    )
    if not cases:
        raise DualsegError("DSB 2018: no <id>/images/<id>.png with <id>/masks/ found in the archive/--from")
    for case in progress_bar(cases, desc="dsb2018", enabled=progress):
        shutil.copy2(case / "images" / f"{case.name}.png", _mkdir(out / "images") / f"{case.name}.png")
        instances = None
        for k, nucleus in enumerate(_images_in(case / "masks"), start=1):
            m = read_mask(nucleus) > 0
            instances = np.zeros(m.shape, np.uint16) if instances is None else instances
            instances[m] = k
        if instances is None:
            raise DualsegError(f"DSB 2018: {case / 'masks'} holds no nucleus masks")
        write_png_atomic(np.where(instances > 0, 255, 0).astype(np.uint8), out / "masks" / f"{case.name}.png")
        write_png_atomic(instances, out / "instance_masks" / f"{case.name}.png")
    return [f"{len(cases)} images"]


def convert_acdc(roots: Sequence[Path], out: Path, progress: bool) -> list[str]:
    """NIfTI ED/ES volumes -> 2D slices, volume min-max to [0, 1] stored as 16-bit PNG; split.csv by folder."""
    import nibabel as nib

    labels = sorted(p for root in roots for p in root.rglob("patient*_frame*_gt.nii.gz"))
    if not labels:
        raise DualsegError("ACDC: no patientNNN_frameMM_gt.nii.gz found in the archive/--from")
    rows = []
    for gt_path in progress_bar(labels, desc="acdc", enabled=progress):
        image_path = gt_path.with_name(gt_path.name.replace("_gt.nii.gz", ".nii.gz"))
        if not image_path.is_file():
            raise DualsegError(f"ACDC: {gt_path} has no image volume {image_path.name}")
        volume = np.asarray(nib.load(image_path).dataobj, dtype=np.float32)
        label = np.asarray(nib.load(gt_path).dataobj).round().astype(np.uint8)
        low, high = float(volume.min()), float(volume.max())
        volume = (volume - low) / max(high - low, 1e-8)
        split = "test" if "testing" in gt_path.parts else "train"
        case = image_path.name[: -len(".nii.gz")]
        for k in range(volume.shape[2]):  # nibabel (X, Y, Z): a slice transposed is (rows = Y, cols = X)
            stem = f"{case}_slice_{k + 1}"
            write_png_atomic(np.round(volume[:, :, k].T * 65535).astype(np.uint16), out / "images" / f"{stem}.png")
            write_png_atomic(label[:, :, k].T.copy(), out / "masks" / f"{stem}.png")
            rows.append(f"{stem},{split}")
    (out / "split.csv").write_text("stem,split\n" + "\n".join(rows) + "\n")
    return [f"{len(labels)} volumes, {len(rows)} slices"]


CONVERTERS: dict[str, Callable[[Sequence[Path], Path, bool], list[str]]] = {
    "isbi2012": convert_isbi2012,
    "drive": convert_drive,
    "cvc_clinicdb": convert_cvc_clinicdb,
    "kvasir_seg": convert_kvasir_seg,
    "dsb2018": convert_dsb2018,
    "acdc": convert_acdc,
}


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
        notes = CONVERTERS[entry.converter](roots, out, progress)
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
