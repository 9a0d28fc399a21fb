"""Dataset descriptions (encodings, groups, default splits) and split strategies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dualseg.config import load_config
from dualseg.data.build import prepare_data
from dualseg.data.datasets.acdc import acdc_patient
from dualseg.data.datasets.cvc_clinicdb import cvc_sequence
from dualseg.data.descriptions import description_from_dict, description_to_dict, get_description
from dualseg.data.resolve import infer_description, resolve_description
from dualseg.data.splits import load_split, make_split
from dualseg.errors import DualsegError


def test_binary_encoding_roundtrip():
    d = get_description("drive")
    mask = np.array([[0, 255], [255, 0]], np.uint8)
    labels = d.encode_mask(mask)
    assert labels.tolist() == [[0, 1], [1, 0]]
    assert d.decode_labels(labels).tolist() == mask.tolist()
    assert d.encode_mask(np.array([[0, 1]], np.uint8)).tolist() == [[0, 1]]  # 0/1 accepted where 0/255 declared


def test_values_outside_classes_name_the_file():
    with pytest.raises(DualsegError, match=r"m\.png.*\[7\]"):
        get_description("drive").encode_mask(np.array([[0, 7]], np.uint8), "m.png")
    with pytest.raises(DualsegError, match="outside the declared classes"):
        get_description("acdc").encode_mask(np.array([[0, 4]], np.uint8), "x.png")


def test_isbi_reports_both_classes():
    d = get_description("isbi2012")
    assert d.class_names == ("membrane", "cell_interior") and d.foreground == [0, 1]
    assert d.encode_mask(np.array([[0, 255]], np.uint8)).tolist() == [[0, 1]]


def test_instance_masks_become_semantic():
    d = description_from_dict({**description_to_dict(get_description("dsb2018")), "instance_masks": True})
    assert d.encode_mask(np.array([[0, 3, 17]], np.uint16)).tolist() == [[0, 1, 1]]


def test_group_keys():
    assert cvc_sequence("1") == cvc_sequence("25") == "seq01"
    assert cvc_sequence("26") == "seq02" and cvc_sequence("612") == "seq29"
    assert acdc_patient("patient012_frame01_slice_3") == "patient012"


def test_unknown_description():
    with pytest.raises(DualsegError, match="did you mean 'drive'"):
        get_description("drvie")


def test_infer_description(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray(np.array(np.arange(64).reshape(8, 8) % 3, np.uint8)).save(tmp_path / "masks" / f"{i}.png")
    d = infer_description(tmp_path)
    assert d.channels == 3 and d.num_classes == 3 and d.mask_values is None
    assert resolve_description(tmp_path).num_classes == 3


def test_random_split_disjoint_and_seeded():
    stems = [str(i) for i in range(30)]
    a = make_split(stems, "random", seed=0, val_fraction=0.2)
    b = make_split(stems, "random", seed=0, val_fraction=0.2)
    c = make_split(stems, "random", seed=1, val_fraction=0.2)
    assert a == b and a != c
    assert len(a["val"]) == 6 and len(a["train"]) == 24 and not a["test"]
    assert not set(a["train"]) & set(a["val"])


def test_group_aware_split_keeps_groups_together():
    stems = [f"patient{p:03d}_frame01_slice_{s}" for p in range(20) for s in range(5)]
    split = make_split(stems, "random", seed=3, val_fraction=0.2, test_fraction=0.2, group_key=acdc_patient)
    owner = {}
    for name, items in split.items():
        for s in items:
            owner.setdefault(acdc_patient(s), set()).add(name)
    assert all(len(v) == 1 for v in owner.values())
    assert sum(len(v) for v in split.values()) == 100 and len(split["test"]) == 20


def test_kfold_partitions_the_non_test_cases():
    stems = [str(i) for i in range(23)]
    vals = [set(make_split(stems, "kfold", folds=5, fold=k, seed=0, official_test=["0", "1"])["val"]) for k in range(5)]
    assert set().union(*vals) == set(stems) - {"0", "1"}
    assert sum(len(v) for v in vals) == 21
    with pytest.raises(DualsegError, match="fold"):
        make_split(stems, "kfold", folds=5, fold=5)


def test_split_file(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["a", "b"], "val": ["c"], "test": []}))
    assert make_split(["a", "b", "c"], "file", file=path)["val"] == ["c"]
    path.write_text(json.dumps({"train": ["a", "c"], "val": ["c"]}))
    with pytest.raises(DualsegError, match="both"):
        load_split(path)
    with pytest.raises(DualsegError, match="unknown case"):
        load_split(path, ["a"])


def _bundle(data_root, name):
    return prepare_data(load_config(None, [f"data.root={data_root / name}"]))


def test_default_splits_of_the_shared_datasets(data_root):
    isbi = _bundle(data_root, "isbi2012").split
    assert (len(isbi["train"]), len(isbi["val"]), len(isbi["test"])) == (24, 6, 0)
    drive = _bundle(data_root, "drive")
    assert drive.split["test"] == sorted(f"{i:02d}_test" for i in range(1, 21))
    assert len(drive.split["val"]) == 4 and all(s.endswith("_training") for s in drive.split["val"])
    assert all(drive.samples[s].fov is not None for s in drive.split["train"])
    acdc = _bundle(data_root, "acdc").split
    patients = {name: {acdc_patient(s) for s in acdc[name]} for name in acdc}
    assert len(patients["test"]) == 10 and len(patients["val"]) == 10 and len(patients["train"]) == 60
    assert not (patients["train"] & patients["val"]) and not (patients["val"] & patients["test"])
    cvc = _bundle(data_root, "cvc_clinicdb").split
    seqs = {name: {cvc_sequence(s) for s in cvc[name]} for name in cvc}
    assert not (seqs["train"] & seqs["val"]) and not (seqs["train"] & seqs["test"]) and not (seqs["val"] & seqs["test"])
    assert 0.05 < len(cvc["test"]) / 612 < 0.15
