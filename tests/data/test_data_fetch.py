"""``dualseg fetch-data`` against a local HTTP server (127.0.0.1, no outside network): verify, resume, convert."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from dualseg.cli import main
from dualseg.data.fetch import downloads_folder, fetch_dataset, unpack
from dualseg.data.fetch_catalog import CATALOG, CatalogEntry, Resource
from dualseg.data.io import read_image, read_mask
from dualseg.errors import DualsegError


class _Server:
    """Serves ``files`` (path -> bytes), honours ``Range: bytes=N-`` with 206, and can cut a response short."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once: dict[str, int] = {}  # path -> bytes sent before the connection drops (first request only)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_once.pop(self.path, None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    s = _Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _kvasir_zip() -> tuple[bytes, dict[str, np.ndarray]]:
    """A Kvasir-SEG-shaped zip: Kvasir-SEG/images/*.jpg and JPEG masks (0/255 discs, with compression noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :64]
    truth, buf = {}, io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, stem in enumerate(("cju0a", "cju0b")):
            zf.writestr(f"Kvasir-SEG/images/{stem}.jpg", _jpeg(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)))
            disc = np.where((yy - 24) ** 2 + (xx - 20 - 20 * k) ** 2 < 150, 255, 0).astype(np.uint8)
            zf.writestr(f"Kvasir-SEG/masks/{stem}.jpg", _jpeg(np.repeat(disc[..., None], 3, axis=-1)))
            truth[stem] = disc
    return buf.getvalue(), truth


def _entry(url: str, filename: str = "kvasir-seg.zip", converter: str = "kvasir_seg", **checksum) -> CatalogEntry:
    return CatalogEntry(
        name=converter, title="test", homepage="", licence="", size="", converter=converter, conversion="",
        description=converter, resources=(Resource(url, filename, checksum_source="test", **checksum),),
    )


def _leftovers(parent: Path, keep: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != keep)


def test_download_verify_extract_convert_check(server, tmp_path, capsys):
    data, truth = _kvasir_zip()
    server.files["/kvasir-seg.zip"] = data
    entry = _entry(server.url("/kvasir-seg.zip"), sha256=hashlib.sha256(data).hexdigest())
    dest = tmp_path / "kvasir_seg"
    result = fetch_dataset(entry, dest, progress=False, log=lambda m: None)
    assert result.report.problems == [] and result.report.pairs == 2
    assert sorted(p.name for p in (dest / "images").iterdir()) == ["cju0a.jpg", "cju0b.jpg"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:  # images are copied byte for byte
        assert (dest / "images/cju0a.jpg").read_bytes() == zf.read("Kvasir-SEG/images/cju0a.jpg")
    for stem, disc in truth.items():
        mask = read_mask(dest / "masks" / f"{stem}.png")
        assert set(np.unique(mask).tolist()) == {0, 255}
        assert np.mean(mask != disc) < 0.01  # JPEG noise only flips the odd edge pixel
    assert _leftovers(tmp_path, "kvasir_seg") == []  # no temp folder, no downloads left
    assert (dest / "DATASET.md").is_file()
    assert main(["check-data", str(dest)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data, _ = _kvasir_zip()
    server.files["/k.zip"] = data
    server.cut_once["/k.zip"] = len(data) // 3
    entry = _entry(server.url("/k.zip"), sha256=hashlib.sha256(data).hexdigest())
    dest = tmp_path / "kvasir_seg"
    with pytest.raises(DualsegError, match="interrupted.*run the same command again to resume"):
        fetch_dataset(entry, dest, progress=False, log=lambda m: None)
    part = downloads_folder(dest) / "kvasir-seg.zip.part"
    assert part.stat().st_size == len(data) // 3 and not dest.exists()
    fetch_dataset(entry, dest, progress=False, log=lambda m: None)
    assert server.requests[-1] == ("/k.zip", f"bytes={len(data) // 3}-")
    assert (dest / "masks/cju0b.png").is_file() and _leftovers(tmp_path, "kvasir_seg") == []


def test_resume_from_existing_part_file(server, tmp_path):
    data, _ = _kvasir_zip()
    server.files["/k.zip"] = data
    dest = tmp_path / "kvasir_seg"
    downloads_folder(dest).mkdir()
    (downloads_folder(dest) / "kvasir-seg.zip.part").write_bytes(data[:1000])
    entry = _entry(server.url("/k.zip"), sha256=hashlib.sha256(data).hexdigest())
    fetch_dataset(entry, dest, progress=False, log=lambda m: None)
    assert server.requests == [("/k.zip", "bytes=1000-")]
    assert len(list((dest / "images").iterdir())) == 2


def test_checksum_failure_leaves_nothing(server, tmp_path):
    data, _ = _kvasir_zip()
    server.files["/k.zip"] = data
    url = server.url("/k.zip")
    wrong = "0" * 64
    dest = tmp_path / "kvasir_seg"
    with pytest.raises(DualsegError) as err:
        fetch_dataset(_entry(url, sha256=wrong), dest, progress=False, log=lambda m: None)
    message = str(err.value)
    assert wrong in message and hashlib.sha256(data).hexdigest() in message and url in message
    assert not dest.exists()
    assert list(downloads_folder(dest).iterdir()) == []  # the bad file is gone; no .partial folder either
    assert _leftovers(tmp_path, downloads_folder(dest).name) == []


def test_md5_and_multipage_tiff_conversion(server, tmp_path, data_root):
    """ISBI-style plain-file resources with MD5s: stacks of 3 real slices become PNG slices equal to the source."""
    stems = ("0", "1", "2")
    images = np.stack([read_image(data_root / "isbi2012/images" / f"{s}.png")[..., 0] for s in stems])
    masks = np.stack([read_mask(data_root / "isbi2012/masks" / f"{s}.png") for s in stems])
    resources = []
    for name, stack in (("train-volume.tif", images), ("train-labels.tif", masks)):
        buf = io.BytesIO()  # one page per slice, as the challenge's stacks
        pages = [Image.fromarray(a) for a in stack]
        pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
        server.files[f"/{name}"] = buf.getvalue()
        resources.append(Resource(server.url(f"/{name}"), name, md5=hashlib.md5(buf.getvalue()).hexdigest()))
    entry = CatalogEntry(name="isbi2012", title="t", homepage="", licence="", size="", converter="isbi2012",
                         conversion="", description="isbi2012", resources=tuple(resources))
    dest = tmp_path / "isbi"
    result = fetch_dataset(entry, dest, progress=False, log=lambda m: None)
    assert result.report.pairs == 3 and result.report.problems == []
    for i in range(3):
        np.testing.assert_array_equal(read_image(dest / f"images/{i}.png")[..., 0], images[i])
        np.testing.assert_array_equal(read_mask(dest / f"masks/{i}.png"), masks[i])


def test_failed_check_installs_nothing(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Kvasir-SEG/images/a.jpg", _jpeg(np.zeros((20, 30, 3), np.uint8)))
        zf.writestr("Kvasir-SEG/masks/a.jpg", _jpeg(np.zeros((21, 30, 3), np.uint8)))  # wrong size
    server.files["/k.zip"] = buf.getvalue()
    entry = _entry(server.url("/k.zip"), sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    with pytest.raises(DualsegError, match="size mismatch.*nothing was installed"):
        fetch_dataset(entry, tmp_path / "kvasir_seg", progress=False, log=lambda m: None)
    assert not (tmp_path / "kvasir_seg").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_unverified_needs_allow_flag(server, tmp_path, capsys):
    data, _ = _kvasir_zip()
    server.files["/k.zip"] = data
    entry = _entry(server.url("/k.zip"))
    dest = tmp_path / "kvasir_seg"
    with pytest.raises(DualsegError, match=f"SHA-256 {hashlib.sha256(data).hexdigest()}.*--allow-unverified"):
        fetch_dataset(entry, dest, progress=False, log=lambda m: None)
    assert not dest.exists()
    fetch_dataset(entry, dest, allow_unverified=True, progress=False)
    assert hashlib.sha256(data).hexdigest() in capsys.readouterr().out
    assert len(server.requests) == 1  # the file kept from the refused run was not downloaded again


def test_registration_dataset_gives_instructions(tmp_path, capsys):
    with pytest.raises(DualsegError, match=r"drive\.grand-challenge\.org.*--from"):
        fetch_dataset("drive", tmp_path / "drive", progress=False)
    assert not (tmp_path / "drive").exists() and list(tmp_path.iterdir()) == []
    assert main(["fetch-data", "cvc_clinicdb", "--dest", str(tmp_path / "cvc")]) == 2
    assert "--from" in capsys.readouterr().err


def test_unknown_name_did_you_mean(tmp_path, capsys):
    with pytest.raises(DualsegError, match="did you mean 'isbi2012'"):
        fetch_dataset("isbi2021", tmp_path / "x")
    assert main(["fetch-data", "kvasir_sg", "--dest", str(tmp_path / "k")]) == 2
    assert "did you mean 'kvasir_seg'" in capsys.readouterr().err


def test_list_shows_every_dataset_and_its_checksum_status(capsys):
    assert main(["fetch-data", "--list"]) == 0
    out = capsys.readouterr().out
    for name, entry in CATALOG.items():
        assert name in out and entry.checksum_status in out
    for entry in CATALOG.values():  # every published checksum names its source
        assert all(r.checksum_source for r in entry.resources if r.verified)
        assert entry.resources or entry.registration


def test_drive_from_local_folder(tmp_path):
    src = tmp_path / "DRIVE"
    rng = np.random.default_rng(1)
    for split, number, labelled in (("training", "21", True), ("training", "22", True), ("test", "01", False)):
        folder = src / split
        (folder / "images").mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / "images" / f"{number}_{split}.tif", rng.integers(0, 255, (20, 18, 3), np.uint8))
        (folder / "mask").mkdir(exist_ok=True)
        Image.fromarray(np.full((20, 18), 255, np.uint8)).save(folder / "mask" / f"{number}_{split}_mask.gif")
        if labelled:  # a palette GIF whose indices (0/1) differ from the grey levels they show (3/253)
            (folder / "1st_manual").mkdir(exist_ok=True)
            vessel = Image.fromarray((rng.random((20, 18)) > 0.8).astype(np.uint8), mode="P")
            vessel.putpalette([3, 3, 3, 253, 253, 253])
            vessel.save(folder / "1st_manual" / f"{number}_manual1.gif")
    dest = tmp_path / "out" / "drive"
    dest.parent.mkdir()
    result = fetch_dataset("drive", dest, sources=[src], progress=False, log=lambda m: None)
    assert result.report.pairs == 2 and result.report.fov == 2 and result.report.problems == []
    assert sorted(p.name for p in (dest / "test_images_unlabeled").iterdir()) == ["01_test.tif"]
    indices = read_mask(src / "training/1st_manual/21_manual1.gif")
    assert set(np.unique(indices).tolist()) == {0, 1}
    np.testing.assert_array_equal(read_mask(dest / "masks/21_training.png"), indices * 255)


def test_cvc_swapped_folders_are_put_back(tmp_path):
    src = tmp_path / "mirror"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 255, (12, 16, 3), np.uint8)
    polyp = np.zeros((12, 16), np.uint8)
    polyp[3:8, 4:10] = 250  # not quite 255, as in the source masks
    tifffile.imwrite(src / "images/1.tif", polyp)  # the mirror's images/ holds the mask ...
    tifffile.imwrite(src / "masks/1.tif", frame, photometric="rgb")  # ... and masks/ the RGB frame
    dest = tmp_path / "cvc_clinicdb"
    result = fetch_dataset("cvc_clinicdb", dest, sources=[src], progress=False, log=lambda m: None)
    assert "1 swapped image/mask pairs put back" in result.notes
    np.testing.assert_array_equal(read_image(dest / "images/1.png"), frame)
    np.testing.assert_array_equal(read_mask(dest / "masks/1.png"), np.where(polyp >= 128, 255, 0))


def test_dsb2018_instances_from_zip(tmp_path):
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    nuclei = []
    with zipfile.ZipFile(buf, "w") as zf:
        png = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (10, 12, 4), np.uint8)).save(png, format="PNG")
        zf.writestr("train-hand/abc/images/abc.png", png.getvalue())
        for k, (r, c) in enumerate(((2, 2), (6, 7))):
            m = np.zeros((10, 12), np.uint8)
            m[r : r + 3, c : c + 3] = 255
            nuclei.append(m)
            png = io.BytesIO()
            Image.fromarray(m).save(png, format="PNG")
            zf.writestr(f"train-hand/abc/masks/n{k}.png", png.getvalue())
    archive = tmp_path / "my-dsb-copy.zip"  # not the catalogue's file name: a local copy, taken as it is
    archive.write_bytes(buf.getvalue())
    dest = tmp_path / "dsb2018"
    fetch_dataset("dsb2018", dest, sources=[archive], progress=False, log=lambda m: None)
    instances = read_mask(dest / "instance_masks/abc.png")
    assert instances.dtype == np.uint16 and instances[3, 3] == 1 and instances[7, 8] == 2
    np.testing.assert_array_equal(read_mask(dest / "masks/abc.png"), np.maximum(*nuclei))


def test_local_archive_with_wrong_checksum_is_refused(tmp_path):
    archive = tmp_path / "kvasir-seg.zip"  # the catalogue's file name, so its published SHA-256 applies
    archive.write_bytes(_kvasir_zip()[0])
    with pytest.raises(DualsegError, match="checksum mismatch.*expected sha256 03b30e21"):
        fetch_dataset("kvasir", tmp_path / "kvasir_seg", sources=[archive], progress=False, log=lambda m: None)
    assert not (tmp_path / "kvasir_seg").exists()
    messages = []
    fetch_dataset("kvasir", tmp_path / "kvasir_seg", sources=[archive], allow_unverified=True, progress=False,
                  log=messages.append)
    assert any("not the published file" in m for m in messages) and (tmp_path / "kvasir_seg/masks").is_dir()


def test_acdc_volumes_to_slices(tmp_path):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(4)
    for split, patient in (("training", "patient001"), ("testing", "patient101")):
        folder = tmp_path / "ACDC/database" / split / patient
        folder.mkdir(parents=True)
        volume = rng.normal(100, 30, (9, 7, 2)).astype(np.float32)  # (X, Y, Z)
        label = rng.integers(0, 4, (9, 7, 2)).astype(np.uint8)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / f"{patient}_frame01.nii.gz")
        nib.save(nib.Nifti1Image(label, np.eye(4)), folder / f"{patient}_frame01_gt.nii.gz")
    dest = tmp_path / "acdc"
    fetch_dataset("acdc", dest, sources=[tmp_path / "ACDC"], progress=False, log=lambda m: None)
    assert len(list((dest / "images").iterdir())) == 4
    image = read_image(dest / "images/patient001_frame01_slice_2.png")[..., 0]
    assert image.dtype == np.uint16 and image.shape == (7, 9)  # rows = Y, columns = X
    source = tmp_path / "ACDC/database/training/patient001/patient001_frame01.nii.gz"
    volume = np.asarray(nib.load(source).dataobj, dtype=np.float64)
    expected = np.round((volume - volume.min()) / (volume.max() - volume.min()) * 65535)[:, :, 1].T
    np.testing.assert_array_equal(image, expected)
    split = (dest / "split.csv").read_text()
    assert "patient101_frame01_slice_1,test" in split and "patient001_frame01_slice_2,train" in split


def test_zip_with_escaping_member_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(DualsegError, match="outside the extraction folder"):
        unpack(archive, tmp_path / "into")
    assert not (tmp_path / "outside.txt").exists()


def test_cli_mirror_url_is_still_verified(server, tmp_path, capsys):
    data, _ = _kvasir_zip()
    server.files["/mirror/kvasir-seg.zip"] = data
    url = server.url("/mirror/kvasir-seg.zip")
    dest = tmp_path / "kvasir_seg"
    assert main(["fetch-data", "kvasir_seg", "--dest", str(dest), "--url", f"kvasir-seg.zip={url}"]) == 2
    err = capsys.readouterr().err
    assert f"from {url}" in err and CATALOG["kvasir_seg"].resources[0].sha256 in err
    assert server.requests == [("/mirror/kvasir-seg.zip", None)] and not dest.exists()
    assert main(["fetch-data", "kvasir_seg", "--dest", str(dest), "--url", "nope.zip=http://x"]) == 2
    assert "unknown file" in capsys.readouterr().err


def test_tar_archive_from_local_file(tmp_path):
    import tarfile

    data, truth = _kvasir_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path / "unzipped")
    archive = tmp_path / "kvasir-copy.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "unzipped/Kvasir-SEG", arcname="Kvasir-SEG")
    dest = tmp_path / "out" / "kvasir_seg"
    dest.mkdir(parents=True)  # an empty folder may be the destination
    result = fetch_dataset("kvasir_seg", dest, sources=[archive], progress=False, log=lambda m: None)
    assert result.report.pairs == 2 and sorted(p.stem for p in (dest / "masks").iterdir()) == sorted(truth)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["kvasir_seg"]
