"""`cathtrack eval --no-speed` skips the forward-pass speed test; without it the test runs
10 timed passes after 2 warm-up ones."""

from __future__ import annotations

import json

import pytest

import cathtrack.cli.eval as eval_cli
from cathtrack.checkpoint import save_model
from cathtrack.cli import main
from cathtrack.model import ModelConfig, build_model


@pytest.fixture(scope="module")
def dataset_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_speed")
    arguments = ["synth", "--out", str(root / "data"), "--n", "2", "--size", "64", "--seed", "5",
                 "--workers", "1"]  # fmt: skip
    assert main(arguments) == 0
    model = build_model(ModelConfig(backbone="resnet18", width=0.25))
    save_model(root / "model", model, input_size=64)
    return root


def test_no_speed_skips_the_speed_test(dataset_and_model, capsys, monkeypatch):
    root = dataset_and_model
    calls = []
    monkeypatch.setattr(eval_cli, "forward_fps", lambda *a, **k: calls.append(a) or 1.0)
    out = root / "no_speed.json"
    arguments = ["eval", str(root / "model"), str(root / "data"), "--device", "cpu", "--json",
                 str(out)]  # fmt: skip
    assert main([*arguments, "--no-speed"]) == 0
    assert calls == []
    assert json.loads(out.read_text())["fps"] is None
    table = capsys.readouterr().out
    assert [line.split()[-1] for line in table.splitlines() if "forward FPS" in line] == ["n/a"]
    assert main(arguments) == 0  # without the flag the speed test runs once
    assert len(calls) == 1 and json.loads(out.read_text())["fps"] == 1.0


def test_the_speed_test_times_ten_passes_after_two_warm_ups(monkeypatch):
    import torch

    calls = []

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, frame):
            calls.append(frame.shape)
            return frame

    assert eval_cli.forward_fps(Counting(), 32, "cpu") > 0
    assert calls == [(1, 1, 32, 32)] * 12
