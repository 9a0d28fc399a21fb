"""NIfTI volumes: slice layout, geometry kept on write, and slice-wise prediction end to end."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from dualseg.data.dataset import normalize_image
from dualseg.deploy.predict import PredictOptions, predict_folder
from dualseg.errors import DualsegError
from dualseg.inference.loading import load_inference_model
from dualseg.inference.predictor import predict_probabilities
from dualseg.inference.volumes import read_volume, unit_range, write_volume

AFFINE = np.array([[0.0, -1.25, 0.1, 30.0], [0.9, 0.0, 0.0, -12.5], [0.0, 0.2, 5.0, 7.0], [0, 0, 0, 1]])


def save(path, data, affine=AFFINE):
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, 1)
    image.set_sform(affine, 2)
    nib.save(image, str(path))
    return path


def test_slices_are_the_last_axis_transposed_and_write_back_exactly(tmp_path):
    data = np.random.default_rng(0).normal(size=(20, 28, 3)).astype(np.float32)
    slices, reference = read_volume(save(tmp_path / "v.nii.gz", data))
    assert slices.shape == (3, 28, 20)
    assert np.array_equal(slices[1], data[:, :, 1].T)
    out = nib.load(str(write_volume(slices, reference, tmp_path / "back.nii.gz", np.float32)))
    assert out.shape == data.shape and np.array_equal(np.asarray(out.dataobj), data)
    assert np.allclose(out.affine, AFFINE) and np.allclose(out.header.get_zooms(), reference.header.get_zooms())
    assert int(out.header["sform_code"]) == 2 and int(out.header["qform_code"]) == 1


def test_unit_range_is_per_volume():
    v = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 3.0)]).astype(np.float32)
    assert np.array_equal(unit_range(v), np.stack([np.zeros((2, 2)), np.ones((2, 2))]))


def test_predicting_a_volume_keeps_shape_and_geometry_and_matches_2d_prediction(tmp_path, unet_run):
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(24, 40, 4)) * 100 + 500).astype(np.int16)
    (tmp_path / "in").mkdir()
    save(tmp_path / "in" / "case.nii.gz", data)
    save(tmp_path / "in" / "flat.nii", data[:, :, 0].copy())  # a 2D NIfTI keeps its 2D shape
    out = tmp_path / "out"
    written = predict_folder(unet_run, tmp_path / "in", out, device="cpu", progress=False,
                             options=PredictOptions(probabilities="npy", batch_size=3))
    assert sorted(p.name for p in written) == ["case.nii.gz", "flat.nii"]
    labels = nib.load(str(out / "case.nii.gz"))
    assert labels.shape == data.shape and labels.get_data_dtype() == np.uint8
    assert np.allclose(labels.affine, AFFINE) and int(labels.header["sform_code"]) == 2
    assert nib.load(str(out / "flat.nii")).shape == (24, 40)
    probs = nib.load(str(out / "probabilities" / "case.nii.gz"))
    assert probs.shape == (*data.shape, 2) and np.allclose(np.asarray(probs.dataobj).sum(-1), 1, atol=1e-5)

    loaded = load_inference_model(unet_run)  # slice k, predicted as a 2D image, gives the same labels
    volume = unit_range(data.astype(np.float32).transpose(2, 1, 0))
    x = torch.from_numpy(normalize_image(volume[2][..., None], loaded.spec.normalize).transpose(2, 0, 1).copy())[None]
    expected = predict_probabilities(loaded.model, x)["probs"].argmax(1)[0].numpy()
    assert np.array_equal(np.asarray(labels.dataobj)[:, :, 2].T, expected)
    assert np.array_equal(np.asarray(probs.dataobj)[..., 1] > 0.5, np.asarray(labels.dataobj) == 1)


def test_volumes_that_are_not_3d_are_refused(tmp_path):
    path = save(tmp_path / "multi.nii.gz", np.zeros((8, 8, 3, 2), np.float32))
    with pytest.raises(DualsegError, match="expected a 3D volume"):
        read_volume(path)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    with pytest.raises(DualsegError, match="cannot read NIfTI"):
        read_volume(broken)
