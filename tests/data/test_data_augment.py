"""Training for other devices: colour jitter, histogram shift, the description's scale range, the isotropic zoom
with its context crop at large zoom, and every existing config drawing exactly the samples it drew before."""

from __future__ import annotations

import math
from pathlib import Path

import monai.transforms as mt
import numpy as np
import pytest
import torch
from PIL import Image

import dualseg
from dualseg.config import load_config
from dualseg.data.build import make_dataset, prepare_data
from dualseg.data.colour import RandColourJitterd, jitter_colour
from dualseg.data.descriptions import get_description
from dualseg.data.transforms import build_colour_transform, build_train_transform, context_crop
from dualseg.errors import DualsegError

REPO = Path(__file__).resolve().parents[2]
RED, GREEN, GRAY = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.5, 0.5, 0.5)
# four seeded training items of each shipped config, summarised as [image mean, image std, sum of a fixed pixel
# grid, mask mean (, FOV mean)]: taken with the code before the colour, preprocess and scale-mode keys existed
# (commit 2a94c0c; a digest of the rounded pixels agreed there and here). Summaries with a tolerance, not a digest,
# so CPUs whose vector kernels round differently (AVX2, AVX-512, AMX) still compare equal.
ISBI_UNET_ITEMS = [[0.14995, 1.00461, 4.489, 0.81329], [0.01522, 0.94994, 0.037, 0.74997],
                   [-0.05303, 0.97795, 0.736, 0.75722], [-0.04429, 0.99716, -5.476, 0.78807]]
DRIVE_UNET_ITEMS = [[0.56949, 0.90921, 52.65, 0.13606, 0.84958], [0.21934, 0.73204, 30.145, 0.09161, 0.83522],
                    [0.58035, 0.20125, 43.429, 0.06017, 0.99956], [0.69003, 0.19261, 60.49, 0.14615, 1.0]]


def _pixels(*colours: tuple[float, float, float]) -> torch.Tensor:
    """A (3, 1, N) image of the given RGB pixels."""
    return torch.tensor(colours, dtype=torch.float32).T[:, None, :]


def test_hue_turns_red_into_green_and_keeps_the_range():
    turned = jitter_colour(_pixels(RED, GRAY), 1 / 3, 1.0, [1, 1, 1])
    assert torch.allclose(turned[:, 0, 0], torch.tensor(GREEN), atol=1e-5)  # a third of the circle
    assert torch.allclose(turned[:, 0, 1], torch.tensor(GRAY), atol=1e-6)  # gray has no hue to turn
    noise = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    for shift in (-0.5, -0.2, 0.1, 0.45):
        out = jitter_colour(noise, shift, 1.0, [1, 1, 1])
        assert out.min() >= 0 and out.max() <= 1


def test_saturation_zero_gives_gray_and_gains_cast_with_clipping():
    gray = jitter_colour(_pixels(RED, (0.2, 0.4, 0.6)), 0.0, 0.0, [1, 1, 1])
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])
    assert gray[0, 0, 0] == pytest.approx(0.2989, abs=1e-4)  # the luma of pure red (ITU-R 601 weights)
    cast = jitter_colour(_pixels(GRAY, (0.4, 0.4, 0.4)), 0.0, 1.0, [2.0, 1.0, 0.5])
    assert torch.allclose(cast[:, 0, 0], torch.tensor([1.0, 0.5, 0.25]))
    assert torch.allclose(cast[:, 0, 1], torch.tensor([0.8, 0.4, 0.2]))
    assert torch.equal(jitter_colour(_pixels(GRAY), 0.0, 1.0, [3.0, 1.0, 1.0])[0], torch.ones(1, 1))  # saturates


def test_random_colour_jitter_is_seeded_and_off_at_zero():
    image = {"image": torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))}
    jitter = RandColourJitterd("image", 0.1, 0.5, 0.2)
    jitter.set_random_state(seed=7)
    first = jitter(image)["image"]
    jitter.set_random_state(seed=7)
    assert torch.equal(jitter(image)["image"], first) and not torch.equal(first, image["image"])
    assert torch.equal(RandColourJitterd("image", 0.0, 0.0, 0.0)(image)["image"], image["image"])


def test_colour_keys_are_refused_for_gray_images_and_off_by_default():
    cfg = load_config(None)
    assert build_colour_transform(cfg.data.augment, 3, "drive") is None
    assert cfg.data.augment.colour_keys == {} and cfg.data.augment.histogram_shift == 0
    gray = load_config(None, ["data.augment.hue=0.1", "data.augment.channel_gain=0.2"]).data.augment
    with pytest.raises(DualsegError, match="data.augment.hue, data.augment.channel_gain change colours, but the "
                                           "images of dataset 'isbi2012' have 1 channel"):
        build_colour_transform(gray, 1, "isbi2012")
    shift = load_config(None, ["data.augment.histogram_shift=1"]).data.augment  # works on gray images
    assert isinstance(build_colour_transform(shift, 1, "isbi2012").transforms[0], mt.RandHistogramShiftd)


def _affine(transform: mt.Compose) -> mt.RandAffined:
    return next(t for t in transform.transforms if isinstance(t, mt.RandAffined))


def test_scale_auto_takes_the_description_range():
    assert get_description("drive").scale_range == (0.6, 1.7)
    assert all(get_description(n).scale_range == (0.85, 1.15) for n in ("isbi2012", "cvc_clinicdb", "acdc"))
    auto = load_config(None, ["data.augment.affine=0.5", "data.augment.scale=auto"]).data.augment
    grid = _affine(build_train_transform(auto, (64, 64), None, (0.6, 1.7))).rand_affine.rand_affine_grid
    assert grid.scale_range == ((pytest.approx(-0.4), pytest.approx(0.7)),)  # MONAI adds 1: 0.6..1.7
    default = load_config(None, ["data.augment.affine=0.5"]).data.augment
    grid = _affine(build_train_transform(default, (64, 64), None, (0.6, 1.7))).rand_affine.rand_affine_grid
    assert grid.scale_range == ((pytest.approx(-0.15), pytest.approx(0.15)),)  # a set range is kept


def test_scale_keys_are_checked():
    with pytest.raises(DualsegError, match="data.augment.scale: expected a list, got 'wide'; or 'wide' is not one"):
        load_config(None, ["data.augment.scale=wide"])
    with pytest.raises(DualsegError, match="scale_mode 'isotropic' cuts training patches: set data.patch_size"):
        load_config(None, ["data.augment.scale_mode=isotropic"])
    with pytest.raises(DualsegError, match="data.sr.mode 'teacher' reads SR targets made from the unprocessed"):
        load_config(None, ["data.sr.mode=teacher", "data.augment.saturation=0.2"])


def test_context_crop_sides_by_hand():
    assert context_crop((256, 256), (0.6, 1.7), 0.0) == (436, 436)  # ceil(256 x 1.7 = 435.2)
    # 256 x 1.7 x (cos 20 + sin 20) = 435.2 x 1.28171 = 557.8
    assert context_crop((256, 256), (0.6, 1.7), 20.0) == (558, 558)
    assert context_crop((128, 256), (0.5, 0.9), 0.0) == (256, 256)  # no zoom-out: the patch's longer side
    assert context_crop((100, 100), (1.0, 2.0), 90.0) == (math.ceil(200 * math.sqrt(2)),) * 2  # 45 deg at most


def _zoomed_out(mode: str, ramp: torch.Tensor) -> np.ndarray:
    """The 256 patch of a 700x700 image at grid scale 1.7 (structures x0.6), no rotation, in ``mode``."""
    aug = load_config(None, ["data.augment.flip=0", "data.augment.rot90=0", "data.augment.affine=1",
                             "data.augment.rotate_deg=0", "data.augment.scale=[1.7, 1.7]",
                             f"data.augment.scale_mode={mode}", "data.patch_size=[256, 256]",
                             "data.augment.intensity=0", "data.augment.gamma=0", "data.augment.noise=0"]).data.augment
    transform = build_train_transform(aug, (256, 256))
    transform.set_random_state(seed=3)
    out = transform({"image": ramp[None], "mask": torch.zeros(1, 700, 700)})
    assert out["image"].shape == (1, 256, 256) and out["mask"].shape == (1, 256, 256)
    return out["image"][0].numpy()


def test_isotropic_zoom_out_shows_image_where_the_rows_mode_mirrors():
    rows = torch.arange(700, dtype=torch.float32)[:, None].repeat(1, 700)  # value = row index
    for ramp, steps in ((rows, lambda p: np.diff(p[:, 128])), (rows.T, lambda p: np.diff(p[128]))):
        step = steps(_zoomed_out("isotropic", ramp))
        assert np.all(step > 0) and step.mean() == pytest.approx(1.7, abs=0.01)  # seen 1.7x as dense, no mirror
    legacy = _zoomed_out("rows", rows)
    assert np.any(np.diff(legacy[:, 128]) < 0)  # the plain 256 crop reads past its borders: a reflected ramp
    assert np.all(np.diff(_zoomed_out("rows", rows.T)[128]) == 1)  # and MONAI's draw scales the rows only


def test_isotropic_zoom_draws_are_log_uniform_and_seeded():
    from dualseg.data.zoom import RandZoomRotated

    zoom = RandZoomRotated(("image",), 1.0, (0.5, 2.0), 10.0, (8, 8), ("bilinear",))
    zoom.set_random_state(seed=0)
    scales, angles = zip(*(zoom.draw() for _ in range(4000)))
    assert min(scales) >= 0.5 and max(scales) <= 2.0 and max(np.abs(angles)) <= math.radians(10)
    assert np.mean(np.array(scales) < 1) == pytest.approx(0.5, abs=0.03)  # as many zoom-ins as zoom-outs
    assert np.mean(np.array(scales) < math.sqrt(2)) == pytest.approx(0.75, abs=0.03)  # log-uniform quartile
    image = {"image": torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))}
    zoom.set_random_state(seed=4)
    first = zoom(image)["image"]
    zoom.set_random_state(seed=4)
    assert first.shape == (1, 8, 8) and torch.equal(zoom(image)["image"], first)
    never = RandZoomRotated(("image",), 0.0, (0.5, 2.0), 0.0, (8, 8), ("bilinear",))
    assert torch.equal(never(image)["image"], image["image"][:, 4:12, 4:12])  # not drawn: the centre crop


def _items(config: str, root: Path, *extra: str) -> list[list[float]]:
    cfg = load_config(config, [f"data.root={root}", "data.cache_mb=0", *extra])
    dataset = make_dataset(cfg, prepare_data(cfg), "train", train=True)
    out = []
    for epoch, index in ((0, 0), (0, 1), (1, 0), (2, 3)):
        item = dataset[(epoch, index)]
        image = item["image"].double()
        row = [image.mean(), image.std(), image[:, ::53, ::47].sum(), item["mask"].double().mean()]
        out.append([float(v) for v in row] + ([float(item["fov"].double().mean())] if "fov" in item else []))
    return out


def test_seeded_training_samples_of_shipped_configs_are_unchanged(data_root):
    isbi = dualseg.sample_data_path("isbi2012")
    np.testing.assert_allclose(_items("configs/isbi2012/unet.yaml", isbi), ISBI_UNET_ITEMS, atol=2e-3)
    explicit_off = ("data.preprocess=none", "data.augment.hue=0", "data.augment.histogram_shift=0",
                    "data.augment.scale_mode=rows")
    np.testing.assert_allclose(_items("configs/isbi2012/unet.yaml", isbi, *explicit_off), ISBI_UNET_ITEMS, atol=2e-3)
    np.testing.assert_allclose(_items("configs/drive/unet.yaml", data_root / "drive"), DRIVE_UNET_ITEMS, atol=2e-3)


@pytest.mark.parametrize("config", sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")
                                          if p.name != "unet_robust.yaml"))
def test_shipped_configs_leave_the_new_keys_off(config):
    cfg = load_config(REPO / config)
    aug = cfg.data.augment
    assert cfg.data.preprocess == "none" and aug.colour_keys == {} and aug.histogram_shift == 0
    assert aug.scale != "auto" and aug.scale_mode == "rows"


def test_robust_drive_config_is_the_drive_recipe_plus_the_robust_keys():
    base, robust = load_config(REPO / "configs/drive/unet.yaml"), load_config(REPO / "configs/drive/unet_robust.yaml")
    aug = robust.data.augment
    assert aug.scale == "auto" and aug.scale_mode == "isotropic"
    assert aug.hue > 0 and aug.saturation > 0 and aug.channel_gain > 0 and aug.histogram_shift > 0
    for key in ("scale", "scale_mode", "hue", "saturation", "channel_gain", "histogram_shift"):
        setattr(aug, key, getattr(base.data.augment, key))
    robust.name, robust.output_dir = base.name, base.output_dir
    assert robust.to_dict() == base.to_dict()


def _rgb_folder(root: Path, count: int = 3, side: int = 48) -> Path:
    rng = np.random.default_rng(0)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / "images" / f"c{i}.png")
        mask = np.zeros((side, side), np.uint8)
        mask[8:30, 10 + i:34] = 255
        Image.fromarray(mask).save(root / "masks" / f"c{i}.png")
    return root


def test_colour_augmented_items_repeat_per_seed_epoch_index(tmp_path):
    root = _rgb_folder(tmp_path / "rgb")
    cfg = load_config(None, [f"data.root={root}", "data.patch_size=[32, 32]", "data.augment.hue=0.1",
                             "data.augment.saturation=0.5", "data.augment.histogram_shift=0.5"])
    dataset = make_dataset(cfg, prepare_data(cfg), "train", train=True)
    a, b = dataset[(0, 1)], dataset[(0, 1)]
    assert a["image"].shape == (3, 32, 32) and torch.equal(a["image"], b["image"])
    assert not torch.equal(dataset[(1, 1)]["image"], a["image"])
    plain = load_config(None, [f"data.root={root}", "data.patch_size=[32, 32]"])
    unjittered = make_dataset(plain, prepare_data(plain), "train", train=True)[(0, 1)]
    assert torch.equal(a["mask"], unjittered["mask"])  # the spatial draw is the same: only colours change
    assert not torch.equal(a["image"], unjittered["image"])
