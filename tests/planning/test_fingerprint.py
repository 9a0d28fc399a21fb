"""``dualseg plan --fingerprint-only``: hand-computed fingerprints of small folders, the ISBI sample, the CLI and
the bounded pixel sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import dualseg
from dualseg.cli import main
from dualseg.planning.fingerprint import DataProblems, fingerprint
from dualseg.planning.stats import PixelStats, counted_percentile

# three gray images of constant value with masks of classes 0/1/2 (class indices, inferred)
VALUES = {"a": 0, "b": 51, "c": 255}


def _masks() -> dict[str, np.ndarray]:
    a = np.zeros((4, 6), np.uint8)
    a[0, 0] = 1  # class 1: a single pixel ...
    a[2:4, 3:5] = 1  # ... and a 2x2 block
    b = np.zeros((4, 6), np.uint8)
    b[0, :] = 2  # class 2: one row of 6
    c = np.zeros((8, 5), np.uint8)
    c[0, 0] = c[1, 1] = 1  # class 1: diagonal neighbours, one component (8-connectivity)
    c[:, 4] = 2  # class 2: one column of 8
    return {"a": a, "b": b, "c": c}


def _write(root, images: dict[str, np.ndarray], masks: dict[str, np.ndarray]):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, image in images.items():
        Image.fromarray(image).save(root / "images" / f"{stem}.png")
    for stem, mask in masks.items():
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return root


@pytest.fixture
def synth(tmp_path):
    masks = _masks()
    images = {s: np.full(m.shape, VALUES[s], np.uint8) for s, m in masks.items()}
    return _write(tmp_path / "synth", images, masks)


def test_hand_computed_fingerprint(synth):
    fp = fingerprint(synth, progress=False)
    json.dumps(fp)  # serialisable
    assert fp["pairs"] == 3 and fp["channels"] == 1 and fp["bit_depth"] == ["uint8"] and fp["kind"] == "2D images"
    sizes = fp["image_sizes"]
    assert sizes["counts"] == [{"width": 6, "height": 4, "images": 2}, {"width": 5, "height": 8, "images": 1}]
    assert fp["image_sizes"]["width"] == {"min": 5, "median": 6, "max": 6}
    assert fp["image_sizes"]["height"] == {"min": 4, "median": 4, "max": 8}
    assert fp["mask"]["encoding"] == "class indices" and fp["mask"]["stored_values"] == {"0": 3, "1": 2, "2": 2}
    # 88 pixels: class 1 = 1 + 4 + 2, class 2 = 6 + 8, the rest background
    assert [(k["pixels"], k["images"]) for k in fp["classes"]] == [(67, 3), (7, 2), (14, 2)]
    assert fp["classes"][1]["fraction"] == pytest.approx(7 / 88)
    objects = fp["objects"]["per_class"]
    assert [k["index"] for k in objects] == [1, 2]
    assert objects[0]["components"] == 3 and objects[0]["area"] == {"min": 1, "median": 2, "max": 4}
    assert objects[1]["components"] == 2 and objects[1]["area"] == {"min": 6, "median": 6, "max": 8}
    everything = np.array([0.0] * 24 + [0.2] * 24 + [1.0] * 40)
    foreground = np.array([0.0] * 5 + [0.2] * 6 + [1.0] * 10)
    for population, pixels in (("all", everything), ("foreground", foreground)):
        (stats,) = fp["intensity"][population]
        assert stats["mean"] == pytest.approx(pixels.mean(), abs=1e-6)
        assert stats["std"] == pytest.approx(pixels.std(), abs=1e-6)
        assert (stats["min"], stats["max"]) == (0.0, 1.0)
        for q in ("1", "25", "50", "99"):
            assert stats["percentiles"][q] == pytest.approx(np.percentile(pixels, float(q)), abs=1e-6)
    assert fp["intensity"]["all"][0]["mean"] == pytest.approx(44.8 / 88, abs=1e-6)
    assert fp["groups"] is None and fp["volumes"] is None and fp["spacing"] is None and fp["fov_masks"] == 0


def test_groups_volumes_and_16_bit(tmp_path):
    stems = ("patient001_frame01_slice_0", "patient001_frame01_slice_1", "patient002_frame01_slice_0")
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 3
    images = {s: np.full((4, 4), 65535, np.uint16) for s in stems}
    root = _write(tmp_path / "slices", images, dict.fromkeys(stems, mask))
    fp = fingerprint(root, dataset="acdc", progress=False)
    assert fp["bit_depth"] == ["uint16"] and fp["intensity"]["all"][0]["max"] == 1.0
    assert fp["groups"] == {"count": 2, "images_per_group": {"min": 1, "median": 1, "max": 2}}
    assert fp["kind"] == "2D slices of volumes" and fp["volumes"]["count"] == 2
    assert [k["components"] for k in fp["objects"]["per_class"]] == [0, 0, 3]  # RV, Myo absent; LV once per slice
    assert fp["objects"]["per_class"][0]["area"] is None


def test_isbi_sample():
    fp = fingerprint(dualseg.sample_data_path("isbi2012"), progress=False)
    assert fp["pairs"] == 30 and fp["image_sizes"]["counts"] == [{"width": 512, "height": 512, "images": 30}]
    assert fp["channels"] == 1 and fp["bit_depth"] == ["uint8"] and fp["description"]["name"] == "isbi2012"
    assert [k["name"] for k in fp["classes"]] == ["membrane", "cell_interior"]
    assert sum(k["pixels"] for k in fp["classes"]) == 30 * 512 * 512
    assert [k["images"] for k in fp["classes"]] == [30, 30]
    stats = fp["intensity"]["all"][0]
    assert 0 <= stats["percentiles"]["0.5"] < stats["percentiles"]["50"] < stats["percentiles"]["99.5"] <= 1
    assert all(k["components"] > 0 and k["area"]["min"] >= 1 for k in fp["objects"]["per_class"])


def test_pixel_sample_is_bounded_and_unbiased():
    stats = PixelStats(channels=1, size=200)
    rng = np.random.default_rng(3)
    chunks = [np.zeros((1000, 1))] * 5 + [np.ones((1000, 1))] * 5 + [rng.random((1000, 1)) for _ in range(10)]
    for chunk in chunks:
        stats.add(chunk)
        assert len(stats.sample) <= 200 and len(stats.keys) <= 200
    everything = np.concatenate(chunks)
    (summary,) = stats.summary()
    assert stats.n == 20_000 and summary["mean"] == pytest.approx(everything.mean())
    assert summary["std"] == pytest.approx(everything.std())
    # a sample that kept only early (or late) chunks would hold only zeros (or uniforms); a fair one holds ~25% ones
    assert 0.1 < float((stats.sample == 1).mean()) < 0.4
    assert summary["percentiles"]["50"] == pytest.approx(np.percentile(everything, 50), abs=0.15)


def test_fingerprint_with_a_tiny_sample_keeps_exact_moments(synth):
    fp = fingerprint(synth, progress=False, sample_size=5)
    assert fp["intensity"]["all"][0]["mean"] == pytest.approx(44.8 / 88, abs=1e-6)


def test_counted_percentile():
    from collections import Counter

    assert counted_percentile(Counter({1: 1, 2: 1, 3: 1, 4: 1}), 50) == 2
    assert counted_percentile(Counter({5: 3, 9: 1}), 50) == 5 and counted_percentile(Counter({5: 3, 9: 1}), 100) == 9


def test_cli(synth, tmp_path, capsys):
    out = tmp_path / "out" / "fp.json"
    assert main(["plan", str(synth), "--fingerprint-only", "--no-progress", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 pairs" in printed and "class_1" in printed and f"wrote {out}" in printed
    assert json.loads(out.read_text())["pairs"] == 3
    assert main(["plan", str(synth), "--fingerprint-only", "--no-progress", "-o", str(out)]) == 0  # ours: replaced
    stranger = tmp_path / "out" / "mine.json"
    stranger.write_text("{}")
    assert main(["plan", str(synth), "--fingerprint-only", "--no-progress", "-o", str(stranger)]) == 2
    assert "not written by dualseg" in capsys.readouterr().err and stranger.read_text() == "{}"
    assert main(["plan", str(synth), "--fingerprint-only", "--no-progress", "-o", str(synth / "fp.json")]) == 2
    assert "inside the input folder" in capsys.readouterr().err and not (synth / "fp.json").exists()


def test_cli_bad_input(synth, tmp_path, capsys):
    def error(argv: list[str]) -> str:
        assert main(["plan", *argv, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
        return err

    assert "too small for unet" in error([str(synth)])  # 4 px images: below twice U-Net's smallest divisor
    assert "dataset folder not found" in error([str(tmp_path / "missing"), "--fingerprint-only"])
    (tmp_path / "empty").mkdir()
    assert "no 'images/' folder" in error([str(tmp_path / "empty"), "--fingerprint-only"])
    (tmp_path / "nodata" / "images").mkdir(parents=True)
    (tmp_path / "nodata" / "images" / "notes.txt").write_text("not an image")
    assert "holds no images" in error([str(tmp_path / "nodata"), "--fingerprint-only"])


def test_cli_folder_with_problems(synth, tmp_path, capsys):
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(synth / "masks" / "orphan.png")
    Image.fromarray(np.zeros((3, 6), np.uint8)).save(synth / "masks" / "b.png")  # size mismatch
    out = tmp_path / "fp.json"
    assert main(["plan", str(synth), "--fingerprint-only", "--no-progress", "-o", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "PROBLEMS (2)" in printed and "mask without image" in printed and "size mismatch" in printed
    assert not out.exists()
    assert main(["check-data", str(synth)]) == 1
    assert capsys.readouterr().out == printed  # check-data's own messages
    with pytest.raises(DataProblems, match="check-data"):
        fingerprint(synth, progress=False)


def test_spacing_from_the_files_or_the_description(tmp_path):
    import tifffile

    root = tmp_path / "em_stack"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k, px_per_cm in enumerate((2000, 2000, 4000)):  # 5, 5 and 2.5 um pixels
        tifffile.imwrite(root / "images" / f"{k}.tif", rng.integers(0, 255, (32, 32), dtype=np.uint8),
                         resolution=(px_per_cm, px_per_cm), resolutionunit="CENTIMETER")
        Image.fromarray((rng.random((32, 32)) > 0.5).astype(np.uint8) * 255).save(root / "masks" / f"{k}.png")
    fp = fingerprint(root, progress=False)
    assert fp["spacing"]["source"] == "files" and fp["spacing"]["images_stating"] == 3
    assert fp["spacing"]["mm"] == pytest.approx({"min": 0.0025, "median": 0.005, "max": 0.005})
    isbi = fingerprint(dualseg.sample_data_path("isbi2012"), progress=False)  # PNGs stating none: the 4 nm ssTEM
    assert isbi["spacing"] == {"source": "description", "images_stating": 0,
                               "mm": {"min": 4e-6, "median": 4e-6, "max": 4e-6}}
