"""Training loop: learning on synthetic data, exact resume, checkpoints, config, CLI, stages, DDP."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml
from safetensors.torch import load_file

from cathtrack.checkpoint import load_model
from cathtrack.device import autocast_dtype, cpu_has_native_bfloat16
from cathtrack.model.config import ModelConfig
from cathtrack.train.batches import StepBatches
from cathtrack.train.cli import main
from cathtrack.train.config import ConfigError, config_hash, load_config
from cathtrack.train.distributed import Distributed
from cathtrack.train.optimization import SCHEDULED_TOPK
from cathtrack.train.prioritization import STRATEGIES
from cathtrack.train.trainer import Trainer

# The tiny setting of every test: ResNet18 at quarter width, 64 px, fixed synthetic frames.
TINY = {
    "model": {"backbone": "resnet18", "width": 0.25},
    "data": {
        "size": 64,
        "train": {"kind": "synthetic", "preset": "easy", "seed": 0, "length": 16},
        "val": {"kind": "synthetic", "preset": "easy", "seed": 1, "length": 4},
        "num_workers": 0,
    },
    "batch_size": 4,
    "steps": 6,
    "epochs": None,
    # One thread: on 2 shared cores, two threads that lose a core to another process spin-wait
    # (measured 2.5x slower than one thread for these tiny models).
    "threads": 1,
    "val_every": 0,
    "val_at_start": False,
    "checkpoint_every": 100,
    # Top-K active from step 1 so that the resume test covers the per-sample memory.
    "prioritization": {"name": "mdrp", "params": {"warmup_steps": 1, "ramp_steps": 2}},
}


def _write_config(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def _tiny(tmp_path: Path, *overrides: str):
    return load_config(_write_config(tmp_path / "tiny.yaml", TINY), list(overrides))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_equal_states(a, b, where: str = "state") -> None:
    """Recursive torch.equal / == over nested dicts and lists of tensors."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_equal_states(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal_states(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


# --------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_tiny_run_learns_segmentation_and_detection(tmp_path):
    """300 steps (~65 s on one loaded core) at 96 px on zoomed 'easy' frames, fixed seed.

    Measured (this config, 1 CPU thread): mean J 0.035 -> 0.143, F1 at 2 px 0.00 -> 0.39 (with
    2 threads: 0.153 and 0.41). The margins below are about half of the measured gains, so a
    regression that halves learning fails while thread-count noise does not.
    """
    zoom = {"field_of_view_mm": [110, 140]}
    config = _tiny(
        tmp_path,
        "data.size=96",
        "data.train.length=128",
        "data.val.length=24",
        f"data.train.synth={json.dumps(zoom)}",
        f"data.val.synth={json.dumps(zoom)}",
        "batch_size=8",
        "steps=300",
        "optimizer.lr=1e-3",
        "val_at_start=true",
        "prioritization.params={}",
    )
    summary = Trainer(config, tmp_path / "run", progress=False).fit()
    rows = _rows(tmp_path / "run" / "val_log.csv")
    start, end = rows[0], rows[-1]
    assert (int(start["step"]), int(end["step"])) == (0, 300)
    assert float(end["mean_j"]) - float(start["mean_j"]) > 0.06
    assert float(end["f1_2px"]) - float(start["f1_2px"]) > 0.2
    assert summary["best_step"] == 300


# --------------------------------------------------------------------------- precision


def test_cpu_bfloat16_is_refused_on_a_cpu_without_it(tmp_path, monkeypatch):
    monkeypatch.setattr("cathtrack.device.cpu_has_native_bfloat16", lambda: False)
    with pytest.raises(ValueError, match="cpu_bf16"):
        Trainer(_tiny(tmp_path, "cpu_bf16=true"), tmp_path / "run", progress=False)
    assert autocast_dtype(torch.device("cpu"), amp=True, cpu_bf16=False) is None
    assert autocast_dtype(torch.device("cpu"), amp=True, cpu_bf16=None) is None  # auto: none here
    monkeypatch.setattr("cathtrack.device.cpu_has_native_bfloat16", lambda: True)
    assert autocast_dtype(torch.device("cpu"), amp=True, cpu_bf16=None) == torch.bfloat16


@pytest.mark.skipif(not cpu_has_native_bfloat16(), reason="this CPU computes no bfloat16 natively")
def test_cpu_bfloat16_run_trains_in_bfloat16_and_keeps_float32_weights(tmp_path):
    config = _tiny(tmp_path, "cpu_bf16=true", "val_every=6")
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert trainer.autocast_dtype == torch.bfloat16
    seen = []
    hook = trainer.network.projection.register_forward_hook(
        lambda _m, _i, output: seen.append(output.dtype)
    )
    trainer.fit()
    hook.remove()
    assert set(seen) == {torch.bfloat16}  # training steps and the validation both autocast
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())
    rows = _rows(tmp_path / "run" / "train_log.csv")
    assert len(rows) == 6 and all(math.isfinite(float(row["loss"])) for row in rows)


# --------------------------------------------------------------------------- resume


def test_data_order_is_a_function_of_seed_and_step():
    a = StepBatches(16, 4, seed=3, stage=0, start_step=0, end_step=8)
    b = StepBatches(16, 4, seed=3, stage=0, start_step=5, end_step=8)
    assert list(a)[5:] == list(b)
    epoch0 = sorted(index for step in range(4) for _, index, _ in a.batch(step))
    assert epoch0 == list(range(16))  # each epoch visits every sample once
    assert a.batch(4) != a.batch(0) and a.epoch(4) == 1  # a new permutation per epoch
    # Two ranks split each global batch without overlap.
    ranks = [StepBatches(16, 2, 3, 0, 0, 4, Distributed(rank, 2)).batch(1) for rank in range(2)]
    assert ranks[0] + ranks[1] == a.batch(1)


def test_resume_gives_identical_weights_and_state(tmp_path):
    config = _tiny(tmp_path)
    Trainer(config, tmp_path / "full", progress=False).fit()
    stopped = Trainer(config, tmp_path / "split", progress=False).fit(stop_at=3)
    assert stopped == {"steps": 3, "stopped": True}
    state = json.loads((tmp_path / "split/checkpoints/last/trainer_state.json").read_text())
    assert state["step"] == 3
    Trainer(config, tmp_path / "split", resume=tmp_path / "split", progress=False).fit()

    full, split = tmp_path / "full/checkpoints/last", tmp_path / "split/checkpoints/last"
    _assert_equal_states(
        load_file(full / "model.safetensors"), load_file(split / "model.safetensors"), "weights"
    )
    for part in ("optimizer", "scheduler", "prioritization", "difficulty"):
        _assert_equal_states(
            torch.load(full / f"{part}.pt", weights_only=True),
            torch.load(split / f"{part}.pt", weights_only=True),
            part,
        )
    # The resumed logs read like the uninterrupted run's (same steps, same losses).
    full_log, split_log = (
        _rows(tmp_path / "full/train_log.csv"),
        _rows(split / "../../train_log.csv"),
    )
    assert [(r["step"], r["loss"]) for r in full_log] == [(r["step"], r["loss"]) for r in split_log]


def test_checkpoint_files_are_safetensors_json_and_weights_only(tmp_path):
    config = _tiny(tmp_path, "val_every=3")
    Trainer(config, tmp_path / "run", progress=False).fit()
    for name in ("last", "best"):
        directory = tmp_path / "run/checkpoints" / name
        model, metadata = load_model(directory)
        assert metadata["input_size"] == 64
        assert metadata["training"]["config_hash"] == config_hash(config)
        assert metadata["model"]["backbone"] == "resnet18"
        state = json.loads((directory / "trainer_state.json").read_text())
        assert state["config_hash"] == config_hash(config)
        assert state["best_step"] in (3, 6)
    last = tmp_path / "run/checkpoints/last"
    assert load_model(last)[1]["training"]["step"] == 6
    parts = sorted(p.name for p in last.glob("*.pt"))
    assert parts == [
        "difficulty.pt",
        "optimizer.pt",
        "prioritization.pt",
        "rng.pt",
        "scaler.pt",
        "scheduler.pt",
    ]
    for part in parts:
        torch.load(last / part, weights_only=True)  # raises on anything but tensors/containers
    memory = torch.load(last / "prioritization.pt", weights_only=True)["memory"]
    assert memory["values"].shape == (2, 16) and bool(memory["seen"].all())


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_trains_in_the_loop(tmp_path, name):
    params = "{warmup_steps: 1, ramp_steps: 1}" if name in SCHEDULED_TOPK else "{}"
    config = _tiny(tmp_path, f"prioritization.name={name}", f"prioritization.params={params}")
    trainer = Trainer(config, tmp_path / "run", progress=False)
    initial = {k: v.clone() for k, v in trainer.network.named_parameters()}
    trainer.fit(stop_at=3)
    rows = _rows(tmp_path / "run/train_log.csv")
    assert len(rows) == 3 and all(math.isfinite(float(r["loss"])) for r in rows)
    changed = [k for k, v in trainer.network.named_parameters() if not torch.equal(v, initial[k])]
    assert len(changed) > len(initial) // 2
    if name == "gradnorm":  # the learned task weights moved away from 1
        assert float(rows[-1]["weight/detection"]) != 1.0
    if name in ("single_seg", "single_det"):
        silenced = "detection" if name == "single_seg" else "segmentation"
        assert all(float(r[f"weight/{silenced}"]) == 0.0 for r in rows)


# --------------------------------------------------------------------------- config


def test_config_yaml_inherit_overrides_and_hash(tmp_path):
    base = _write_config(tmp_path / "base.yaml", TINY)
    child = tmp_path / "child.yaml"
    child.write_text(
        "inherit: base.yaml\nprioritization: {name: topk_soft, params: {keep: 0.5}}\n"
        "optimizer: {lr: 1e-3}\n"
    )
    config = load_config(child, ["model.width=0.5", "optimizer.betas=[0.8, 0.95]", "amp=false"])
    assert config.model.width == 0.5 and config.model.backbone == "resnet18"  # inherited
    assert config.optimizer.lr == 1e-3  # "1e-3" (a string to PyYAML) typed as a float
    assert config.optimizer.betas == (0.8, 0.95) and config.amp is False
    # Mappings merge with the inherited ones: params keeps the base's schedule and adds keep.
    assert config.prioritization.name == "topk_soft"
    assert config.prioritization.params == {"warmup_steps": 1, "ramp_steps": 2, "keep": 0.5}
    assert config.data.size == 64

    # The hash depends on values only, not on file layout or key order.
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(yaml.safe_dump(dict(reversed(list(TINY.items())))))
    assert config_hash(load_config(base)) == config_hash(load_config(reordered))
    assert config_hash(load_config(base)) != config_hash(load_config(base, ["seed=1"]))
    assert len(config_hash(config)) == 64


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lrr=1", "unknown key 'optimizer.lrr'; valid keys here: lr, betas"),
        ("optimizer.lr=fast", "optimizer.lr must be float, got 'fast'"),
        ("steps", "is not of the form key=value"),
        ("schedule.name=linear", "schedule.name must be one of cosine, step"),
        ("data.val.seed=0", "validation set uses the training seed 0"),
        ("stages.0.steps=3", "no list element 'stages.0'"),
        ("data.crop=48", "data.crop must be a positive multiple of 32 below data.size (64)"),
        ("data.crop_fraction=1.5", "data.crop_fraction must be in [0, 1], got 1.5"),
        ("grad_clip=-1", "grad_clip must be in (0.0, inf), got -1.0"),
        ("optimizer.lr=0", "optimizer.lr must be in (0.0, inf), got 0.0"),
        ("optimizer.lr=nan", "optimizer.lr must be in (0.0, inf), got nan"),
        ("optimizer.lr=-1e-3", "optimizer.lr must be in (0.0, inf), got -0.001"),
        ("optimizer.betas=[1.5,0.999]", "optimizer.betas[0] must be in [0.0, 1.0), got 1.5"),
        ("optimizer.eps=0", "optimizer.eps must be in (0.0, inf), got 0.0"),
        ("size_weight=-5", "size_weight must be in [0.0, inf), got -5.0"),
        ("prioritization.kappa_min=2", "prioritization.kappa_min must be in (0.0, 1.0], got 2.0"),
        ("schedule.warmup_steps=-10", "schedule.warmup_steps must be >= 0, got -10"),
    ],
)
def test_config_errors_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _tiny(tmp_path, override)


def test_every_shipped_config_loads():
    folder = Path(__file__).resolve().parents[1] / "configs"
    names = sorted(path.name for path in folder.glob("*.yaml"))
    assert "paper.yaml" in names and "cpu_resnet34.yaml" in names
    for name in names:
        config = load_config(folder / name)
        assert config.batch_size >= 1, name
    shipped = load_config(folder / "cpu_resnet34.yaml")
    assert shipped.cpu_bf16 is None and shipped.model.heatmap_stride == 1
    assert shipped.data.train.preset == "real" and shipped.data.crop == 128


def test_config_duplicate_key_in_file_is_refused(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("steps: 10\noptimizer:\n  lr: 1.0e-3\n  lr: 1.0e-2\n")
    with pytest.raises(ConfigError, match="duplicate key 'lr'"):
        load_config(path)


def test_config_unknown_key_in_file(tmp_path):
    path = _write_config(tmp_path / "bad.yaml", {**TINY, "data": {"sise": 64}})
    with pytest.raises(ConfigError, match="unknown key 'data.sise'; valid keys here: size"):
        load_config(path)


# --------------------------------------------------------------------------- CLI


def test_cli_end_to_end(tmp_path, capsys):
    config = _write_config(tmp_path / "tiny.yaml", TINY)
    run = tmp_path / "run"
    code = main(["--config", str(config), "--out", str(run), "--no-progress", "val_every=3"])
    assert code == 0
    assert "best mean KPI" in capsys.readouterr().out
    train_rows = _rows(run / "train_log.csv")
    assert [int(r["step"]) for r in train_rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "kappa_bar/detection", "weight/segmentation", "kept/detection"} <= set(
        train_rows[0]
    )
    val_rows = _rows(run / "val_log.csv")
    assert [int(r["step"]) for r in val_rows] == [3, 6]
    assert all(0 <= float(r["mean_kpi"]) <= 1 for r in val_rows)
    plots = sorted(p.name for p in (run / "plots").glob("*.png"))
    assert plots == [
        "difficulty.png",
        "kept_fraction.png",
        "losses.png",
        "task_weights.png",
        "validation.png",
    ]
    assert all((run / "plots" / p).stat().st_size > 10_000 for p in plots)
    assert (run / "checkpoints/best/model.safetensors").is_file()
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["size"] == 64

    # Resuming a finished run with more steps continues it (new steps only).
    with pytest.warns(UserWarning, match=r"resuming with a changed config \(steps\)"):
        assert main(["--resume", str(run), "--no-progress", "steps=8"]) == 0
    assert [int(r["step"]) for r in _rows(run / "train_log.csv")][-3:] == [6, 7, 8]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--config", "missing.yaml"], "config file missing.yaml not found"),
        (["--config", "{tiny}", "optimizer.lrr=1"], "unknown key 'optimizer.lrr'"),
        (["--config", "{tiny}", "batch_size=many"], "batch_size must be int, got 'many'"),
        (["--config", "{tiny}", "data.train.kind=folder"], "needs a path"),
        ([], "give --config FILE"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, arguments, message):
    tiny = str(_write_config(tmp_path / "tiny.yaml", TINY))
    arguments = [a.replace("{tiny}", tiny) for a in arguments]
    assert main([*arguments, "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error


def test_cli_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "cathtrack-train --config configs/paper.yaml" in capsys.readouterr().out


# --------------------------------------------------------------------------- stages


def test_staged_training_switches_data_and_strategy(tmp_path, angiogram_dir):
    stages = [
        {
            "name": "pretrain",
            "train": {
                "kind": "folder",
                "path": str(angiogram_dir),
                "images_dir": "training",
                "masks_dir": "training",
                "mask_suffix": "_gt",
            },
            "steps": 3,
            "prioritization": {"name": "single_seg"},
        },
        {"name": "multitask", "steps": 3},
    ]
    config = load_config(_write_config(tmp_path / "staged.yaml", {**TINY, "stages": stages}))
    Trainer(config, tmp_path / "run", progress=False).fit()
    rows = _rows(tmp_path / "run/train_log.csv")
    assert [r["stage"] for r in rows] == ["pretrain"] * 3 + ["multitask"] * 3
    for row in rows[:3]:  # angiograms: vessel masks only, segmentation-only strategy
        assert float(row["weight/detection"]) == 0.0
        assert math.isnan(float(row["kappa/detection"]))  # no detection labels at all
        assert float(row["weight/segmentation"]) == 1.0
    for row in rows[3:]:  # synthetic frames, MDRP: W_t = 1 / kappa_bar_t for both tasks
        for task in ("detection", "segmentation"):
            kappa_bar = max(float(row[f"kappa_bar/{task}"]), 0.05)
            assert float(row[f"weight/{task}"]) == pytest.approx(1 / kappa_bar, rel=1e-4)
    metadata = load_model(tmp_path / "run/checkpoints/last")[1]["training"]
    assert (metadata["stage"], metadata["strategy"], metadata["step"]) == ("multitask", "mdrp", 6)


# --------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, config_path: str, out: str, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    config = load_config(config_path, ["threads=1", "device=cpu"])
    trainer = Trainer(config, Path(out) / "run", progress=False)
    trainer.fit()
    torch.save(
        {
            "memory": trainer.strategy.memory.state_dict(),
            "kappa_bar": trainer.strategy.kappa_bar,
            # Parameters only: BatchNorm running statistics are per rank (DDP broadcasts rank 0's
            # before each forward; rank 0's are the ones checkpointed).
            "weights": {k: v.detach().clone() for k, v in trainer.network.named_parameters()},
        },
        Path(out) / f"rank{rank}.pt",
    )
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_cpu_processes_keep_difficulty_tables_identical(tmp_path):
    config = _write_config(tmp_path / "tiny.yaml", {**TINY, "steps": 4, "batch_size": 2})
    mp.spawn(_ddp_worker, args=(str(config), str(tmp_path), _free_port()), nprocs=2, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    _assert_equal_states(states[0], states[1], "rank 0 vs rank 1")
    # 4 steps x 2 ranks x 2 samples = every one of the 16 samples, seen through the merge.
    assert bool(states[0]["memory"]["seen"].all())
    assert len(_rows(tmp_path / "run/train_log.csv")) == 4  # rank 0 alone logs


# --------------------------------------------------------------------------- heatmap stride


@pytest.mark.parametrize("stride", [2, 1])
def test_loader_builds_targets_at_the_networks_stride(tmp_path, stride):
    trainer = Trainer(_tiny(tmp_path), tmp_path / "run", progress=False)
    trainer.network.output_stride = stride  # whatever the model says, the targets follow it
    loader = trainer._loader(trainer.train_sets[0], StepBatches(16, 4, 0, 0, 0, 1))
    batch = next(iter(loader))
    side = 64 // stride
    assert batch["heatmap"].shape == (4, 1, side, side)
    assert int(batch["index"].max()) < side * side


@pytest.mark.parametrize("stride", [2, 1])
def test_training_runs_at_heatmap_stride(tmp_path, stride):
    if "heatmap_stride" not in {field.name for field in dataclasses.fields(ModelConfig)}:
        pytest.skip("ModelConfig has no heatmap_stride")
    config = _tiny(tmp_path, f"model.heatmap_stride={stride}", "steps=2", "val_at_start=true")
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert trainer.network.output_stride == stride
    trainer.fit()
    rows = _rows(tmp_path / "run" / "train_log.csv")
    assert len(rows) == 2 and all(math.isfinite(float(row["loss"])) for row in rows)
    assert all(math.isfinite(float(row["kappa/detection"])) for row in rows)
    assert len(_rows(tmp_path / "run" / "val_log.csv")) == 2  # step 0 and the end


# --------------------------------------------------------------------------- throughput levers


def test_crop_steps_then_full_frames_deterministic_and_labelled(tmp_path):
    config = _tiny(tmp_path, "data.crop=32", "data.crop_fraction=0.5")
    trainer = Trainer(config, tmp_path / "run", progress=False)
    dataset = trainer.train_sets[0]

    def batches():
        sampler = StepBatches(16, 4, 0, 0, 0, 4, crop_steps=2)
        return list(trainer._loader(dataset, sampler))

    first, second = batches(), batches()
    assert [b["image"].shape[-1] for b in first] == [32, 32, 64, 64]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["center"], b["center"])
    # Every cropped image is a window of its full (augmented) frame, with its electrodes.
    crop = first[0]
    for row, index in enumerate(crop["sample_id"].tolist()):
        dataset.set_epoch(0)
        full = torch.from_numpy(dataset[index].image)
        windows = full.unfold(0, 32, 1).unfold(1, 32, 1)  # (33, 33, 32, 32)
        matches = (windows == crop["image"][row, 0]).flatten(2).all(-1).nonzero()
        assert len(matches) >= 1
        top, left = matches[0].tolist()
        kept = crop["center"][row][crop["center_mask"][row]]
        moved = torch.from_numpy(dataset[index].electrodes) - torch.tensor([left, top])
        inside = ((moved >= -0.5) & (moved <= 31.5)).all(1)
        torch.testing.assert_close(kept, moved[inside])


def test_cached_synthetic_frames_are_rendered_once_and_equal(tmp_path, monkeypatch):
    import cathtrack.data.synth as synth

    calls = []
    real_render = synth.render
    monkeypatch.setattr(synth, "render", lambda *a, **k: calls.append(1) or real_render(*a, **k))
    plain = Trainer(_tiny(tmp_path), tmp_path / "a", progress=False).train_sets[0]
    cached = Trainer(_tiny(tmp_path, "data.cache_frames=true"), tmp_path / "b", progress=False)
    cached = cached.train_sets[0]
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for index in range(16):
            a, b = plain[index], cached[index]
            np.testing.assert_array_equal(a.image, b.image)
            np.testing.assert_array_equal(a.electrodes, b.electrodes)
    assert len(calls) == 2 * 16 + 16  # plain renders every epoch, cached once


def test_channels_last_crops_and_cache_resume_exactly(tmp_path):
    config = _tiny(
        tmp_path, "data.crop=32", "data.cache_frames=true", "channels_last=true", "steps=4"
    )
    Trainer(config, tmp_path / "full", progress=False).fit()
    Trainer(config, tmp_path / "split", progress=False).fit(stop_at=2)
    Trainer(config, tmp_path / "split", resume=tmp_path / "split", progress=False).fit()
    _assert_equal_states(
        load_file(tmp_path / "full/checkpoints/last/model.safetensors"),
        load_file(tmp_path / "split/checkpoints/last/model.safetensors"),
        "weights",
    )
    rows = _rows(tmp_path / "full/train_log.csv")
    assert len(rows) == 4 and all(math.isfinite(float(row["loss"])) for row in rows)


def test_init_starts_from_a_model_file_and_refuses_another_architecture(tmp_path):
    source = Trainer(_tiny(tmp_path, "steps=2"), tmp_path / "source", progress=False)
    source.fit()
    weights = tmp_path / "source/checkpoints/last"
    started = Trainer(_tiny(tmp_path, f"init={weights}", "seed=7"), tmp_path / "b", progress=False)
    _assert_equal_states(
        load_file(weights / "model.safetensors"),
        {k: v.contiguous() for k, v in started.network.state_dict().items()},
        "initial weights",
    )
    other = _tiny(tmp_path, f"init={weights}", "model.width=0.5")
    with pytest.raises(ConfigError, match=r"another architecture.*width 0.25 \(config: 0.5\)"):
        Trainer(other, tmp_path / "c", progress=False)
    with pytest.raises(ConfigError, match="init: cannot load"):
        Trainer(_tiny(tmp_path, f"init={tmp_path / 'missing.safetensors'}"), tmp_path / "d")


def test_finetune_config_matches_the_shipped_model_and_loads_its_weights(tmp_path):
    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "configs" / "finetune.yaml")
    shipped = json.loads((root / "models" / "cathtrack_resnet34.json").read_text())
    assert config.model == ModelConfig.from_dict(shipped["model"])
    from cathtrack.model import build_model
    from cathtrack.train.trainer import init_weights

    model = build_model(config.model)
    init_weights(model, root / config.init)
    reference, _ = load_model(root / config.init)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
