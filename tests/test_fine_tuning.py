"""docs/fine-tuning.md end to end: the commands of its worked example, run as written (in this
process, through the same entry points as the shell), with fewer and smaller frames, two training
steps, and TorchScript instead of an AOTInductor export (which compiles for about a minute).
Each command must succeed and leave the files the next one reads."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from cathtrack.cli import main as cathtrack
from cathtrack.model import ModelConfig
from cathtrack.train.cli import main as cathtrack_train
from cathtrack.train.config import load_config

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "fine-tuning.md"
MARKER = "<!-- fine-tuning commands: tests/test_fine_tuning.py runs this block -->"

# documented value -> the test's (the same commands, a smaller set and run)
SMALLER = {
    "--n 96": "--n 8 --workers 1",
    "--n 32": "--n 3 --workers 1",  # validation and test sets
    "--size 256": "--size 128",
    "steps=300": "steps=2 batch_size=4 data.size=128 val_every=0 val_at_start=false threads=1",
    "--format pt2": "--format ts",
    "model.pt2": "model.ts",
}


def documented_commands() -> list[str]:
    text = DOC.read_text()
    assert MARKER in text, f"{DOC} lost its marked command block"
    block = text.split(MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_lite_fine_tuning_config_matches_the_shipped_lite_model():
    config = load_config(REPO / "configs" / "finetune_lite.yaml")
    shipped = json.loads((REPO / "models" / "cathtrack_lite.json").read_text())
    assert config.model == ModelConfig.from_dict(shipped["model"])
    assert config.init == "models/cathtrack_lite.safetensors"
    assert config.data.train.kind == config.data.val.kind == "coco"


def test_the_documented_fine_tuning_runs_end_to_end(tmp_path, monkeypatch):
    for shared in ("configs", "models", "data"):  # the commands run from the repository root
        (tmp_path / shared).symlink_to(REPO / shared)
    monkeypatch.chdir(tmp_path)
    commands = documented_commands()
    assert [shlex.split(c)[:2] for c in commands] == [
        ["cathtrack", "synth"],
        ["cathtrack", "synth"],
        ["cathtrack", "synth"],
        ["cathtrack", "data"],
        ["cathtrack", "data"],
        ["cathtrack", "data"],
        ["cathtrack", "eval"],
        ["cathtrack-train", "--config"],
        ["cathtrack", "eval"],
        ["cathtrack", "export"],
        ["cathtrack", "predict"],
    ]
    # what each step must leave for the next ones
    leaves = [
        ["my_frames/train/annotations.json", "my_frames/train/images"],
        ["my_frames/val/annotations.json"],
        ["my_frames/test/annotations.json"],
        [],
        [],
        [],
        ["my_frames/before.json"],
        ["runs/finetune_lite/checkpoints/best/model.safetensors"],
        ["my_frames/after.json"],
        ["runs/finetune_lite/checkpoints/best/model.ts"],
        ["my_frames/predictions/results.jsonl"],
    ]
    for command, outputs in zip(commands, leaves, strict=True):
        for documented, smaller in SMALLER.items():
            command = command.replace(documented, smaller)
        argv = shlex.split(command)
        entry = cathtrack_train if argv[0] == "cathtrack-train" else cathtrack
        assert entry(argv[1:]) == 0, command
        for output in outputs:
            assert (tmp_path / output).exists(), (command, output)
    before = json.loads((tmp_path / "my_frames/before.json").read_text())
    after = json.loads((tmp_path / "my_frames/after.json").read_text())
    assert before["frames"] == after["frames"] == 3
    assert after["model"].startswith("runs/finetune_lite")
    results = (tmp_path / "my_frames/predictions/results.jsonl").read_text().splitlines()
    assert len(results) == 3


@pytest.mark.parametrize("name", ["finetune.yaml", "finetune_lite.yaml"])
def test_fine_tuning_configs_read_coco_folders(name):
    config = load_config(REPO / "configs" / name)
    assert config.init is not None and (REPO / config.init).is_file()
