"""The on-disk layouts (folder, nnU-Net v2 raw), each through detect/describe/scan, and the dispatcher between them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dualseg.data.descriptions import BINARY_0_255
from dualseg.data.layouts import LAYOUTS, describe_layout, detect_layout, folder, nnunet, scan_folder
from dualseg.data.resolve import resolve_description
from dualseg.errors import DualsegError


def _png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _folder_dataset(root: Path) -> None:
    """images/{a,b,c}.png with masks/{a,b,d}.png and fov_masks/a.png: pairs a and b, orphans c and d."""
    for stem in ("a", "b", "c"):
        _png(np.full((4, 5), 7, np.uint8), root / "images" / f"{stem}.png")
    for stem in ("a", "b", "d"):
        _png(np.zeros((4, 5), np.uint8), root / "masks" / f"{stem}.png")
    _png(np.full((4, 5), 255, np.uint8), root / "fov_masks" / "a.png")


def _nnunet_dataset(root: Path) -> None:
    """Cases x and y (one RGB file each, NaturalImage2DIO), labels 0/1/2 named in dataset.json; a label without
    an image (z)."""
    for case in ("x", "y"):
        _png(np.zeros((4, 5, 3), np.uint8), root / "imagesTr" / f"{case}_0000.png")
    for case in ("x", "y", "z"):
        _png(np.zeros((4, 5), np.uint8), root / "labelsTr" / f"{case}.png")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "polyp": 1, "tool": 2},
        "numTraining": 2, "file_ending": ".png",
    }))


def test_folder_layout_detects_describes_nothing_and_pairs_by_stem(tmp_path):
    _folder_dataset(tmp_path)
    assert folder.detect(tmp_path) and not folder.detect(tmp_path / "images")
    assert folder.describe(tmp_path) is None
    found = folder.scan(tmp_path, "images", "masks", "fov_masks")
    assert [(s.stem, s.image.name, s.mask.name) for s in found.samples] == [("a", "a.png", "a.png"),
                                                                          ("b", "b.png", "b.png")]
    assert found.samples[0].fov == tmp_path / "fov_masks" / "a.png" and found.samples[1].fov is None
    assert found.problems == [f"mask without image: {tmp_path / 'masks' / 'd.png'}",
                              f"image without mask: {tmp_path / 'images' / 'c.png'}"]
    unlabelled = folder.scan(tmp_path, "images", None)
    assert [s.stem for s in unlabelled.samples] == ["a", "b", "c"] and unlabelled.problems == []


def test_nnunet_layout_detects_describes_from_dataset_json_and_pairs_cases(tmp_path):
    _nnunet_dataset(tmp_path)
    assert nnunet.detect(tmp_path) and not folder.detect(tmp_path)
    (tmp_path / "other").mkdir()
    assert not nnunet.detect(tmp_path / "other")
    described = nnunet.describe(tmp_path)
    assert (described.name, described.channels, described.class_names) == ("nnunet", 3, ("background", "polyp",
                                                                                        "tool"))
    assert described.mask_values is None and described.background == 0  # values 0, 1, 2 are the indices already
    found = nnunet.scan(tmp_path)
    assert [(s.stem, s.image.name, s.mask.name, s.extra_channels) for s in found.samples] == [
        ("x", "x_0000.png", "x.png", ()), ("y", "y_0000.png", "y.png", ())]
    assert found.problems == [f"label without image: {tmp_path / 'labelsTr' / 'z.png'}"]


def test_nnunet_labels_with_gaps_map_to_consecutive_classes(tmp_path):
    _nnunet_dataset(tmp_path)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "polyp": 255}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    assert nnunet.describe(tmp_path).mask_values == BINARY_0_255


def test_every_layout_has_the_same_three_functions():
    assert [layout.NAME for layout in LAYOUTS] == ["nnunet", "folder"]
    for layout in LAYOUTS:
        assert all(callable(getattr(layout, f)) for f in ("detect", "describe", "scan"))


def test_dispatcher_chooses_the_layout(tmp_path):
    _folder_dataset(tmp_path / "plain")
    _nnunet_dataset(tmp_path / "Dataset001_Toy")
    assert detect_layout(tmp_path / "plain") is folder
    assert detect_layout(tmp_path / "Dataset001_Toy") is nnunet
    assert describe_layout(tmp_path / "plain") is None
    assert describe_layout(tmp_path / "Dataset001_Toy").class_names == ("background", "polyp", "tool")
    assert [s.stem for s in scan_folder(tmp_path / "Dataset001_Toy").samples] == ["x", "y"]
    assert [s.stem for s in scan_folder(tmp_path / "plain").samples] == ["a", "b"]
    assert resolve_description(tmp_path / "Dataset001_Toy").name == "nnunet"
    assert resolve_description(tmp_path / "plain").class_names == ("background", "foreground")  # inferred


def test_folder_names_from_the_config_mean_the_folder_layout(tmp_path):
    _nnunet_dataset(tmp_path)
    _png(np.zeros((4, 5), np.uint8), tmp_path / "img" / "k.png")
    _png(np.zeros((4, 5), np.uint8), tmp_path / "lab" / "k.png")
    assert [s.stem for s in scan_folder(tmp_path, "img", "lab").samples] == ["k"]


def test_unknown_layout_names_the_fix(tmp_path):
    (tmp_path / "masks").mkdir()
    with pytest.raises(DualsegError, match=r"no 'images/' folder in .*images/ and masks/ .*dataset\.json and "
                                           r"imagesTr/"):
        detect_layout(tmp_path)
    with pytest.raises(DualsegError, match="no 'images/' folder"):
        scan_folder(tmp_path)
    with pytest.raises(DualsegError, match="dataset folder not found"):
        detect_layout(tmp_path / "missing")
    assert describe_layout(tmp_path) is None


@pytest.mark.parametrize("module", ["dualseg.data.layouts.nnunet", "dualseg.data.layouts.folder",
                                    "dualseg.data.descriptions", "dualseg.data.convert_nnunet"])
def test_no_import_circle(module):
    """Each module imports first in a fresh interpreter (a circle fails one of these orders)."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr


def _data_imports() -> dict[str, set[str]]:
    """dualseg.data module -> the dualseg.data modules it imports, at the top or inside functions."""
    import ast

    package = Path(__file__).resolve().parents[2] / "dualseg" / "data"
    modules = {".".join(("dualseg", *p.relative_to(package.parent).with_suffix("").parts)).removesuffix(".__init__"): p
               for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_data_modules_import_one_another_without_a_circle():
    """Lazy imports inside functions count: a circle hidden in one (as descriptions -> nnunet -> scan -> nnunet
    was) fails here too."""
    graph = _data_imports()
    assert graph["dualseg.data.layouts"] >= {"dualseg.data.layouts.folder", "dualseg.data.layouts.nnunet"}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            assert state.get(target) != "open", "import circle: " + " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
