"""Write the backward-compatibility fixture: a checkpoint and a package as an older dualseg wrote them, with the
masks that version predicted, so ``tests/inference/test_legacy_fixture.py`` can prove that a newer dualseg still
loads both and predicts the same masks.

    python benchmarks/parity/legacy_fixture.py [--out tests/fixtures/parity/compat]

Run once, at the commit named in the fixture's ``legacy.json``; re-running it with a newer dualseg would only
prove that dualseg agrees with itself. Two tiny runs on the embedded ISBI 2012 sample (seconds each) cover the
input settings a loader must carry: ``unet`` (z-score, NHWC) and ``ds2f_unet`` (LR input at scale 1/2, bicubic,
NCHW, a sliding window). For each, ``checkpoint.pt`` (the run's best checkpoint), ``package/`` (``dualseg export
--format package``) and ``masks/`` (``dualseg predict`` of the first two sample images) are written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import dualseg  # noqa: E402
from dualseg.cli import main  # noqa: E402
from dualseg.config import load_config  # noqa: E402
from dualseg.engine.trainer import train  # noqa: E402

COMMON = ["train.epochs=4", "train.iters_per_epoch=8", "train.batch_size=2", "train.time_limit_min=null",
          "data.patch_size=[128, 128]", "data.augment=null", "train.early_stopping=null"]
RUNS = {
    "unet": ("configs/isbi2012/unet.yaml", ["model.args.channels=[8, 16, 32, 64]"]),
    "ds2f_unet": ("configs/drive/ds2f_unet_light.yaml", [
        "model.args.channels=[4, 8, 16, 32]", "data.dataset=isbi2012", "eval.use_fov=false",
        "train.channels_last=false", "eval.roi_size=[64, 64]",
        "loss=[{name: ce, output: seg}, {name: mse, output: sr, target: hr_image, valid: null}, "
        "{name: ssim, output: proxy_sr, target: hr_image, valid: null}, "
        "{name: rmi, output: proxy_seg, kwargs: {activation: sigmoid}}]"]),
}


def write_fixture(out: Path, work: Path) -> None:
    sample = dualseg.sample_data_path("isbi2012")
    inputs = work / "inputs"
    inputs.mkdir()
    for image in sorted((sample / "images").iterdir())[:2]:
        shutil.copy(image, inputs / image.name)
    for name, (config, overrides) in RUNS.items():
        run = work / name
        cfg = load_config(ROOT / config, [*COMMON, *overrides, f"data.root={sample}", f"output_dir={run}"])
        train(cfg, progress=False)
        target = out / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy(run / "checkpoints" / "best.pt", target / "checkpoint.pt")
        main(["export", str(run), "--format", "package", "-o", str(target / "package")])
        main(["predict", str(run), str(inputs), str(work / f"{name}_pred"), "--no-overlays", "--no-progress"])
        (target / "masks").mkdir()
        for mask in sorted((work / f"{name}_pred").glob("*.png")):
            shutil.copy(mask, target / "masks" / mask.name)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    runs = {name: {"config": config, "overrides": [*COMMON, *overrides]} for name, (config, overrides) in RUNS.items()}
    meta = {"dualseg_version": dualseg.__version__, "commit": commit,
            "inputs": sorted(p.name for p in inputs.iterdir()), "runs": runs}
    (out / "legacy.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "parity" / "compat")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_fixture(args.out, Path(tmp))
    print(f"wrote {args.out}")
