"""`cathtrack data check`, and the same check refusing a bad dataset in `cathtrack-train` and
`cathtrack eval` before any step. Each broken dataset is a copy of a clean `cathtrack synth`
set with one fault; each is asserted by exit status and by the line that names the fault."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from cathtrack.cli import main as cathtrack
from cathtrack.data.check import check_dataset
from cathtrack.train.cli import main as train


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("check") / "clean"
    args = [
        "synth",
        "--out",
        str(root),
        "--n",
        "4",
        "--size",
        "64",
        "--seed",
        "5",
        "--workers",
        "1",
    ]
    assert cathtrack(args) == 0
    return root


def _copy(clean: Path, tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "data"
    shutil.copytree(clean, root)
    return root, json.loads((root / "annotations.json").read_text())


def _save(root: Path, data: dict) -> None:
    (root / "annotations.json").write_text(json.dumps(data))


def _electrode(data: dict) -> dict:
    return next(a for a in data["annotations"] if a["category_id"] == 2)


def _catheter(data: dict) -> dict:
    return next(a for a in data["annotations"] if a["category_id"] == 1)


def _check(capsys, root: Path, *extra: str) -> tuple[int, str]:
    code = cathtrack(["data", "check", str(root), *extra])
    return code, capsys.readouterr().out


def test_a_synthetic_dataset_is_usable_and_summarised(clean, capsys):
    code, out = _check(capsys, clean)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"{clean}: COCO (annotations.json; pixel-centre coordinates)"
    assert (
        lines[1] == "frames: 4 (labelled for segmentation 4, detection 4; 0 with nothing to find)"
    )
    data = json.loads((clean / "annotations.json").read_text())
    n_electrodes = sum(a["category_id"] == 2 for a in data["annotations"])
    n_catheters = sum(a["category_id"] == 1 for a in data["annotations"])
    assert lines[2].startswith(f"catheters: {n_catheters} targets (")
    assert (
        lines[3]
        == f"electrodes: {n_electrodes} ({n_electrodes} with a box, {n_electrodes} on a catheter)"
    )
    assert lines[-1] == f"{clean}: usable (0 errors, 0 warnings)"


def _duplicate_image_id(root, data):
    data["images"][1]["id"] = data["images"][0]["id"]


def _duplicate_annotation_id(root, data):
    data["annotations"][1]["id"] = data["annotations"][0]["id"]


def _missing_image(root, data):
    (root / "images" / data["images"][2]["file_name"]).unlink()


def _corrupt_image(root, data):
    (root / "images" / data["images"][2]["file_name"]).write_bytes(b"\x89PNG\r\n\x1a\n broken")


def _wrong_size(root, data):
    data["images"][0]["width"] = 65


def _truncated_rle(root, data):
    segmentation = _catheter(data)["segmentation"]
    segmentation["counts"] = segmentation["counts"][:-3]


def _rle_of_another_size(root, data):
    _catheter(data)["segmentation"]["size"] = [32, 64]


def _rle_runs_not_covering_the_image(root, data):
    _catheter(data)["segmentation"] = {"size": [64, 64], "counts": [100, 20, 5]}


def _nan_electrode(root, data):
    _electrode(data)["keypoints"][0] = float("nan")


def _negative_electrode(root, data):
    electrode = _electrode(data)
    electrode["keypoints"][:2] = [-3.0, 10.0]
    electrode["bbox"][:2] = [-4.5, 8.5]


def _electrode_right_of_the_image(root, data):
    electrode = _electrode(data)
    electrode["keypoints"][:2] = [70.0, 10.0]
    electrode["bbox"][:2] = [68.5, 8.5]


def _undeclared_category(root, data):
    data["annotations"][0]["category_id"] = 9


def _annotation_of_no_image(root, data):
    data["annotations"][0]["image_id"] = 999


def _bad_sequences(root, data):
    (root / "sequences.json").write_text(json.dumps({"sequences": [{"image_ids": [1, 77]}]}))


BROKEN = [
    (_duplicate_image_id, "duplicate image id 1"),
    (_duplicate_annotation_id, "duplicate annotation id"),
    (_missing_image, "file not found"),
    (_corrupt_image, "cannot be read as an image"),
    (_wrong_size, "is 64x64 but the labels say 65x64"),
    (_truncated_rle, "RLE 'counts'"),
    (_rle_of_another_size, "RLE size 32x64 differs from the image's 64x64"),
    (_rle_runs_not_covering_the_image, "RLE 'counts' cover 125 pixels, the image has 4096"),
    (_nan_electrode, "is not a finite position"),
    (_negative_electrode, "electrode at (-3, 10) is outside the 64x64 image"),
    (_electrode_right_of_the_image, "electrode at (70, 10) is outside the 64x64 image"),
    (_undeclared_category, "category_id 9 is not declared in categories"),
    (_annotation_of_no_image, "image_id 999 is not an image of the file"),
    (_bad_sequences, "names 77 which is not a frame of the dataset"),
]


@pytest.mark.parametrize(("fault", "message"), BROKEN, ids=[f.__name__[1:] for f, _ in BROKEN])
def test_each_fault_makes_the_dataset_unusable_with_a_line_naming_it(
    clean, tmp_path, capsys, fault, message
):
    root, data = _copy(clean, tmp_path)
    fault(root, data)
    _save(root, data)
    code, out = _check(capsys, root)
    assert code == 1, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert any(message in line for line in errors), out
    assert out.splitlines()[-1].startswith(f"{root}: not usable (")


def test_a_truncated_annotation_file_is_one_error(clean, tmp_path, capsys):
    root, _ = _copy(clean, tmp_path)
    text = (root / "annotations.json").read_text()
    (root / "annotations.json").write_text(text[: len(text) // 2])
    code, out = _check(capsys, root)
    assert code == 1
    assert out.splitlines() == [
        next(line for line in out.splitlines() if "not JSON" in line),
        f"{root}: not usable (1 error, 0 warnings)",
    ]


def test_unknown_categories_and_empty_frames_are_warnings(clean, tmp_path, capsys):
    root, data = _copy(clean, tmp_path)
    data["categories"].append({"id": 7, "name": "ruler"})
    data["annotations"].append(
        {"id": 10_000, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5], "iscrowd": 0}
    )
    last = data["images"][-1]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != last]
    _save(root, data)
    # a frame the file declares labelled (cathtrack's "annotated") and empty is a negative
    code, out = _check(capsys, root)
    assert code == 0, out
    assert "warning: labels: not used: 1 annotations of category 'ruler'" in out
    assert "(labelled for segmentation 4, detection 4; 1 with nothing to find)" in out
    assert out.splitlines()[-1] == f"{root}: usable (0 errors, 1 warning)"
    # an export that does not say which frames were labelled (CVAT, Label Studio)
    for image in data["images"]:
        del image["annotated"]
    _save(root, data)
    code, out = _check(capsys, root)
    assert code == 0, out
    assert "warning: frames: 1 labelled frames have no catheter and no electrode" in out
    assert out.splitlines()[-1] == f"{root}: usable (0 errors, 2 warnings)"


def test_image_mask_folders_are_checked_pair_by_pair(tmp_path, capsys):
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for name, mask_shape in (("a", (32, 32)), ("b", (32, 30)), ("c", (32, 32))):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.png"), np.full((32, 32), 90, np.uint8))
        mask = np.zeros(mask_shape, np.uint8)
        mask[10:12, :] = 255 if name != "c" else 0
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), mask)
    code, out = _check(capsys, tmp_path)
    assert code == 1
    assert f"error: {tmp_path / 'masks' / 'b.png'}: mask is 30x32, its image 32x32" in out
    assert "warning: masks: 1 masks are empty (c.png)" in out


def test_a_folder_that_is_no_dataset(tmp_path, capsys):
    code, out = _check(capsys, tmp_path)
    assert code == 1 and "not a dataset" in out
    code, out = _check(capsys, tmp_path / "absent")
    assert code == 1 and "no such file or folder" in out


# --------------------------------------------------------------------------- train and eval


def _broken_copy(clean: Path, tmp_path: Path) -> Path:
    """Two faults: an electrode outside its frame (the first error) and a missing frame."""
    root, data = _copy(clean, tmp_path)
    _missing_image(root, data)
    _electrode_right_of_the_image(root, data)
    _save(root, data)
    return root


def _tiny_config(tmp_path: Path, train_path: Path, val_path: Path) -> Path:
    config = {
        "model": {"backbone": "resnet18", "width": 0.25},
        "data": {
            "size": 64,
            "train": {"kind": "coco", "path": str(train_path)},
            "val": {"kind": "coco", "path": str(val_path)},
            "num_workers": 0,
        },
        "batch_size": 2,
        "steps": 2,
        "epochs": None,
        "threads": 1,
        "val_every": 0,
        "val_at_start": False,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _refusal_lines(root: Path) -> list[str]:
    """What a run prints when it refuses ``root``: the problems but the first error, then the
    verdict with the first error."""
    report = check_dataset(root)
    assert not report.usable
    return [*report.other_lines(), report.refusal()]


@pytest.mark.parametrize("broken_set", ["train", "val"])
def test_training_refuses_a_bad_dataset_before_any_step(clean, tmp_path, capsys, broken_set):
    bad = _broken_copy(clean, tmp_path)
    paths = {"train": clean, "val": clean, broken_set: bad}
    config = _tiny_config(tmp_path, paths["train"], paths["val"])
    run = tmp_path / "run"
    code = train(["--config", str(config), "--out", str(run), "--no-progress"])
    assert code == 2
    stderr = capsys.readouterr().err.splitlines()
    expected = _refusal_lines(bad)
    assert stderr[:-1] == expected[:-1]
    assert stderr[-1] == f"cathtrack-train: error: {expected[-1]}"
    assert "is outside the 64x64 image" in stderr[-1]  # the first error is in the refusal
    assert any("file not found" in line for line in stderr[:-1])
    assert not run.exists()  # nothing started: no log, no checkpoint


def test_eval_refuses_a_bad_dataset_with_the_same_lines_as_data_check(clean, tmp_path, capsys):
    from cathtrack.checkpoint import save_model
    from cathtrack.model import ModelConfig, build_model

    save_model(tmp_path / "model", build_model(ModelConfig("resnet18", width=0.25)), input_size=64)
    bad = _broken_copy(clean, tmp_path)
    code, out = _check(capsys, bad)
    assert code == 1
    checked = [line for line in out.splitlines() if line.startswith(("error: ", "warning: "))]
    code = cathtrack(["eval", str(tmp_path / "model"), str(bad), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""  # refused before any frame was scored
    stderr = captured.err.splitlines()
    expected = _refusal_lines(bad)
    assert stderr == [*expected[:-1], f"cathtrack eval: error: {expected[-1]}"]
    # the same problems as `cathtrack data check`, the first carried by the error line
    first = checked[0].removeprefix("error: ")
    assert stderr[-1].endswith(first) and stderr[:-1] == checked[1:]
