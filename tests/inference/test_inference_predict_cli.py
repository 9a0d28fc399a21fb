"""``dualseg predict`` and ``dualseg export`` as a user runs them: outputs on disk, options, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dualseg.cli import main


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(folder / "b.png")  # RGB -> gray
    Image.fromarray(rng.integers(0, 65536, (45, 66), dtype=np.uint16)).save(folder / "c.tif")  # 16-bit
    return folder


def read(path):
    return np.asarray(Image.open(path))


def test_predict_writes_masks_probabilities_sr_and_overlays(tmp_path, images, ds2f_run, capsys):
    out = tmp_path / "out"
    rc = main(["predict", str(ds2f_run), str(images), str(out), "--device", "cpu", "--probabilities", "png", "--sr",
               "--tta", "--roi-size", "16", "24", "--overlap", "0.25", "--no-progress"])
    assert rc == 0 and "wrote 3 mask(s)" in capsys.readouterr().out
    for stem, size in (("a", (50, 70)), ("b", (50, 70)), ("c", (45, 66))):
        mask = read(out / f"{stem}.png")
        assert mask.shape == size and set(np.unique(mask)) <= {0, 255}
        prob = read(out / "probabilities" / f"{stem}_object.png")
        assert prob.dtype == np.uint16 and prob.shape == size
        disagree = (prob > 32767) != (mask == 255)  # only where p rounds to 0.5 can the two differ
        assert np.all(np.abs(prob[disagree].astype(float) - 32767.5) <= 1)
        assert read(out / "overlays" / f"{stem}.png").shape == (*size, 3)
    assert not (out / "probabilities" / "a_background.png").exists()
    # The run trained DS2F on inputs downsampled x2 with upscale 2: the SR image has the input's own size/depth.
    assert read(out / "sr" / "a.png").shape == (50, 70) and read(out / "sr" / "a.png").dtype == np.uint8
    assert read(out / "sr" / "c.png").dtype == np.uint16


def test_batches_and_packages_give_the_same_masks(tmp_path, images, unet_run):
    rgb = images / "b.png"
    rgb.unlink()
    Image.fromarray(read(images / "a.png")[::-1].copy()).save(images / "b.png")  # same size as a.png: one batch
    assert main(["predict", str(unet_run), str(images), str(tmp_path / "one"), "--device", "cpu", "--no-progress",
                 "--no-overlays"]) == 0
    assert main(["export", str(unet_run), "--format", "package", "-o", str(tmp_path / "pkg")]) == 0
    assert main(["predict", str(tmp_path / "pkg"), str(images), str(tmp_path / "two"), "--device", "cpu",
                 "--batch-size", "2", "--probabilities", "npy", "--no-progress"]) == 0
    for stem in ("a", "b", "c"):
        assert np.array_equal(read(tmp_path / "one" / f"{stem}.png"), read(tmp_path / "two" / f"{stem}.png"))
        probs = np.load(tmp_path / "two" / "probabilities" / f"{stem}.npy")
        assert probs.dtype == np.float16 and probs.shape[0] == 2
        assert np.array_equal(probs.argmax(0) == 1, read(tmp_path / "two" / f"{stem}.png") == 255)
    assert not (tmp_path / "one" / "overlays").exists() and (tmp_path / "two" / "overlays" / "a.png").is_file()


def test_export_verb_writes_torchscript_beside_its_description(tmp_path, unet_run, capsys):
    out = tmp_path / "exported"
    out.mkdir()
    assert main(["export", str(unet_run), "--format", "torchscript", "-o", str(out), "--input-size", "32", "32"]) == 0
    assert (out / "model.pt").is_file() and (out / "model.pt.json").is_file()
    assert "dynamic H and W" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "input not found"),
        (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "unsupported input file type: notes.txt"),
        (lambda d: d, "holds no images or NIfTI volumes"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, unet_run, capsys, make, message):
    rc = main(["predict", str(unet_run), str(make(tmp_path)), str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bad_options_and_packages_are_one_line_errors(tmp_path, images, unet_run, capsys):
    rc = main(["predict", str(unet_run), str(images), str(tmp_path / "o"), "--sr", "--device", "cpu"])
    assert rc == 2 and "no super-resolution output" in capsys.readouterr().err
    rc = main(["predict", str(unet_run), str(images), str(tmp_path / "o"), "--roi-size", "30", "30"])
    assert rc == 2 and "divisible by the model's size divisor 4" in capsys.readouterr().err
    assert main(["export", str(unet_run), "-o", str(tmp_path / "pkg")]) == 0
    (tmp_path / "pkg" / "model.safetensors").unlink()
    rc = main(["predict", str(tmp_path / "pkg"), str(images), str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "has no model.safetensors" in err and len(err.strip().splitlines()) == 1
