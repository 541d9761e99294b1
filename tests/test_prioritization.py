"""MDRP and the comparison strategies: equations on scripted KPIs, Top-K, schedule, state, DDP."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cathtrack.train.prioritization import (
    STRATEGIES,
    KeepSchedule,
    Prioritization,
    build_prioritization,
)

TASKS = ("segmentation", "detection")
NO_SCHEDULE = {"warmup_steps": 0, "ramp_steps": 0}  # Top-K at its final fraction from step 0


def _step(
    strategy: Prioritization,
    kpis: dict[str, list[float]],
    losses: dict[str, list[float]] | None = None,
    available: dict[str, list[float]] | None = None,
    ids: list[int] | None = None,
    step: int = 0,
    epoch: int = 0,
):
    size = len(kpis["segmentation"])
    losses = losses or {t: [1.0] * size for t in TASKS}
    available = available or {t: [1.0] * size for t in TASKS}
    return strategy.weights(
        step,
        epoch,
        torch.tensor(ids if ids is not None else list(range(size))),
        {t: torch.tensor(losses[t]) for t in TASKS},
        {t: torch.tensor(kpis[t]) for t in TASKS},
        {t: torch.tensor(available[t]) for t in TASKS},
    )


# --------------------------------------------------------------------------- MDRP task level


def test_mdrp_task_weights_follow_the_kpi_ema_exactly():
    strategy = build_prioritization("mdrp", kpi_ema=0.5, keep=1.0, **NO_SCHEDULE)
    # segmentation improves (batch means 0.2, 0.6, 1.0) while detection stays at 0.2
    expected_kappa_bar = [0.2, 0.5 * 0.6 + 0.5 * 0.2, 0.5 * 1.0 + 0.5 * 0.4]
    ratios = []
    for kappa_s, kappa_bar in zip([0.2, 0.6, 1.0], expected_kappa_bar, strict=True):
        out = _step(
            strategy,
            {"segmentation": [kappa_s - 0.1, kappa_s + 0.1], "detection": [0.2, 0.2]},
            losses={"segmentation": [1.0, 3.0], "detection": [2.0, 4.0]},
        )
        assert out.logs["kappa_bar/segmentation"] == pytest.approx(kappa_bar, abs=1e-6)
        assert out.logs["kappa_bar/detection"] == pytest.approx(0.2, abs=1e-6)
        assert out.task_weights["segmentation"] == pytest.approx(1 / kappa_bar, rel=1e-5)
        assert out.task_weights["detection"] == pytest.approx(5.0, rel=1e-5)
        # L_total = sum_t L_t / kappa_bar_t with L_t the batch mean (all kept)
        assert float(out.total.detach()) == pytest.approx(2.0 / kappa_bar + 3.0 * 5.0, rel=1e-5)
        ratios.append(out.task_weights["detection"] / out.task_weights["segmentation"])
    assert ratios[0] < ratios[1] < ratios[2]  # detection gets relatively more as seg improves


def test_task_kpi_ignores_unlabelled_samples_and_clamps_small_kappa():
    strategy = build_prioritization("mdrp", keep=1.0, **NO_SCHEDULE)
    out = _step(
        strategy,
        {"segmentation": [0.5, 0.9], "detection": [0.01, 0.9]},
        available={"segmentation": [1.0, 0.0], "detection": [1.0, 0.0]},
    )
    assert out.logs["kappa_bar/segmentation"] == pytest.approx(0.5)
    assert out.task_weights["detection"] == pytest.approx(1 / 0.05)  # kappa_min
    out = _step(
        strategy, {"segmentation": [0.5], "detection": [0.5]}, available={t: [0.0] for t in TASKS}
    )
    assert out.logs["kappa_bar/segmentation"] == pytest.approx(0.5)  # no labels: no update
    assert math.isnan(out.logs["kept/detection"])


# --------------------------------------------------------------------------- MDRP sample level


def test_topk_keeps_exactly_the_hardest_and_respects_availability():
    strategy = build_prioritization("mdrp", keep=0.5, **NO_SCHEDULE)  # no memory: batch Top-K
    kappa = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2]
    out = _step(
        strategy,
        {"segmentation": kappa, "detection": kappa},
        losses={"segmentation": [1.0] * 6, "detection": [10.0] * 6},
        available={"segmentation": [1.0] * 6, "detection": [1, 0, 1, 1, 1, 1]},
    )
    # segmentation: K = 3 of 6 -> kappa 0.1, 0.2, 0.3 (samples 1, 5, 3)
    assert out.sample_weights["segmentation"].tolist() == [0, 1, 0, 1, 0, 1]
    # detection: sample 1 has no label; K = ceil(0.5 * 5) = 3 of the labelled -> 0.2, 0.3, 0.5
    assert out.sample_weights["detection"].tolist() == [0, 0, 1, 1, 0, 1]
    assert float(out.task_losses["detection"]) == pytest.approx(3 * 10.0 / 6)  # eq. 1: / B
    assert out.logs["kept/detection"] == pytest.approx(3 / 5)


def test_topk_over_the_dataset_memory_with_momentum():
    strategy = build_prioritization(
        "mdrp", keep=0.5, num_samples=10, sample_momentum=0.5, **NO_SCHEDULE
    )
    first = {"segmentation": [0.2, 0.4, 0.6, 0.8], "detection": [0.5] * 4}
    _step(strategy, first, ids=[0, 1, 2, 3])
    # revisiting 0 and 3: kappa~ = 0.5 old + 0.5 new -> 0.6 and 0.5
    out = _step(strategy, {"segmentation": [1.0, 0.2], "detection": [0.5] * 2}, ids=[0, 3])
    memory = strategy.memory.values[TASKS.index("segmentation")]
    assert memory[:4].tolist() == pytest.approx([0.6, 0.4, 0.6, 0.5])
    # dataset population {0.6, 0.4, 0.6, 0.5}: K = 2 -> threshold 0.5 -> sample 3 only
    assert out.sample_weights["segmentation"].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"dataset indices in \[0, 10\)"):
        _step(strategy, first, ids=[0, 1, 2, 10])


def test_keep_schedule_warmup_then_linear_ramp():
    schedule = KeepSchedule(final=0.7, warmup_steps=10, ramp_steps=30)
    values = [schedule(step) for step in (0, 9, 10, 25, 40, 1000)]
    assert values == pytest.approx([1.0, 1.0, 1.0, 0.85, 0.7, 0.7])
    strategy = build_prioritization("mdrp", keep=0.5, warmup_steps=5, ramp_steps=5)
    kpis = {t: [0.1, 0.2, 0.3, 0.4] for t in TASKS}
    kept = [_step(strategy, kpis, step=s).logs["kept/segmentation"] for s in (0, 5, 8, 10)]
    assert kept == [1.0, 1.0, 0.75, 0.5]  # K = ceil(4 x {1.0, 1.0, 0.7, 0.5})


def test_state_dict_round_trip_resumes_identically():
    def run(strategy, steps):
        return [
            _step(strategy, {t: [0.1 * (s + 1), 0.5, 0.9 - 0.1 * s] for t in TASKS}, ids=[s, 4, 7])
            for s in steps
        ]

    original = build_prioritization("mdrp", num_samples=8, keep=0.5, warmup_steps=1, ramp_steps=2)
    run(original, range(3))
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = build_prioritization("mdrp", num_samples=8, keep=0.5, warmup_steps=1, ramp_steps=2)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for a, b in zip(run(original, range(3, 5)), run(resumed, range(3, 5)), strict=True):
        assert a.logs == b.logs
    with pytest.raises(ValueError, match="cannot load into 'dtp'"):
        build_prioritization("dtp").load_state_dict(original.state_dict())


# --------------------------------------------------------------------------- comparison strategies


def _random_batch(seed: int = 0, size: int = 6):
    generator = torch.Generator().manual_seed(seed)
    shared = torch.nn.Parameter(torch.randn(3, generator=generator))
    inputs = {t: torch.randn(size, 3, generator=generator) for t in TASKS}
    losses = {t: (inputs[t] @ shared) ** 2 + 0.1 for t in TASKS}
    kpis = {t: torch.rand(size, generator=generator) for t in TASKS}
    available = {"segmentation": torch.ones(size), "detection": torch.tensor([1.0, 0, 1, 1, 0, 1])}
    return shared, losses, kpis, available


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_gives_finite_weights_and_a_differentiable_loss(name):
    params = NO_SCHEDULE if name in ("mdrp", "topk_hard", "topk_soft") else {}
    strategy = build_prioritization(name, num_samples=6, **params)
    shared, losses, kpis, available = _random_batch()
    out = strategy.weights(
        0,
        0,
        torch.arange(6),
        losses,
        kpis,
        available,
        [shared] if strategy.needs_shared_parameters else None,
    )
    assert math.isfinite(float(out.total.detach())) and all(
        math.isfinite(w) for w in out.task_weights.values()
    )
    assert all(bool(torch.isfinite(w).all()) for w in out.sample_weights.values())
    assert float(out.sample_weights["detection"][[1, 4]].abs().sum()) == 0  # unlabelled
    out.total.backward()
    assert shared.grad is not None and bool(torch.isfinite(shared.grad).all())


def test_single_task_strategies_train_one_task():
    for name, task, other in (
        ("single_seg", "segmentation", "detection"),
        ("single_det", "detection", "segmentation"),
    ):
        out = _step(
            build_prioritization(name),
            {t: [0.5, 0.5] for t in TASKS},
            losses={task: [1.0, 3.0], other: [5.0, 5.0]},
        )
        assert out.task_weights == {task: 1.0, other: 0.0}
        assert float(out.total.detach()) == pytest.approx(2.0)


def test_constant_weights_scale_the_task_losses():
    strategy = build_prioritization("constant", weights={"detection": 5.0, "segmentation": 1.0})
    out = _step(
        strategy,
        {t: [0.3, 0.9] for t in TASKS},
        losses={"segmentation": [1.0, 1.0], "detection": [2.0, 2.0]},
    )
    assert float(out.total.detach()) == pytest.approx(1.0 + 5.0 * 2.0)


def test_dtp_weight_is_focal_in_the_kpi():
    out = _step(
        build_prioritization("dtp", gamma=2.0),
        {"segmentation": [0.8, 0.8], "detection": [0.3, 0.3]},
    )
    assert out.task_weights["segmentation"] == pytest.approx(-(0.2**2) * math.log(0.8), rel=1e-5)
    assert out.task_weights["detection"] == pytest.approx(-(0.7**2) * math.log(0.3), rel=1e-5)


def test_gradnorm_lowers_the_weight_of_the_task_with_larger_gradients():
    strategy = build_prioritization("gradnorm", alpha=0.0, lr=0.05)  # alpha 0: equalise norms
    shared = torch.nn.Parameter(torch.ones(2))
    for _ in range(3):
        losses = {
            "segmentation": (10 * shared).sum().expand(4),
            "detection": shared.sum().expand(4),
        }
        kpis = {t: torch.full((4,), 0.5) for t in TASKS}
        available = {t: torch.ones(4) for t in TASKS}
        out = strategy.weights(0, 0, torch.arange(4), losses, kpis, available, [shared])
    weights = strategy.task_weighting.weights.detach()
    assert float(weights.sum()) == pytest.approx(2.0)
    assert weights[TASKS.index("segmentation")] < 1 < weights[TASKS.index("detection")]
    assert out.task_weights["segmentation"] < 1
    with pytest.raises(ValueError, match="shared_parameters"):
        strategy.weights(0, 0, torch.arange(4), losses, kpis, available)


def test_self_paced_keeps_easy_samples_below_a_growing_threshold():
    strategy = build_prioritization("self_paced", initial_threshold=1.0, growth=2.0)
    losses = {t: [0.5, 1.5, 3.0, 5.0] for t in TASKS}
    kpis = {t: [0.5] * 4 for t in TASKS}
    epoch0 = _step(strategy, kpis, losses=losses, epoch=0)
    epoch2 = _step(strategy, kpis, losses=losses, epoch=2)  # threshold 1 * 2^2 = 4
    assert epoch0.sample_weights["segmentation"].tolist() == [1, 0, 0, 0]
    assert epoch2.sample_weights["segmentation"].tolist() == [1, 1, 1, 0]


def test_soft_assignment_weights_are_proportional_to_difficulty():
    out = _step(build_prioritization("soft_assignment"), {t: [0.25, 0.5, 1.0] for t in TASKS})
    # D = 4, 2, 1 normalised to mean 1
    assert out.sample_weights["segmentation"].tolist() == pytest.approx([12 / 7, 6 / 7, 3 / 7])


def test_hard_threshold_keeps_samples_with_kappa_below_one_half():
    out = _step(build_prioritization("hard_threshold"), {t: [0.2, 0.49, 0.5, 0.9] for t in TASKS})
    assert out.sample_weights["segmentation"].tolist() == [1, 1, 0, 0]


def test_fixed_percent_hard_applies_from_the_first_step():
    strategy = build_prioritization("fixed_percent_hard", fraction=0.3)
    out = _step(strategy, {t: [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.6, 0.4, 0.95] for t in TASKS})
    assert out.sample_weights["segmentation"].nonzero().flatten().tolist() == [1, 3, 5]


def test_topk_soft_weights_the_topk_set_by_difficulty():
    strategy = build_prioritization("topk_soft", keep=0.5, **NO_SCHEDULE)
    out = _step(strategy, {t: [0.9, 0.25, 0.5, 0.8] for t in TASKS})
    # Top-2 hardest: kappa 0.25 and 0.5 -> D = 4 and 2, normalised to mean 1 over the two
    assert out.sample_weights["segmentation"].tolist() == pytest.approx([0, 4 / 3, 2 / 3, 0])


def test_factory_rejects_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="unknown prioritization 'focal'"):
        build_prioritization("focal")
    with pytest.raises(ValueError, match=r"'dtp' takes \['gamma'\], not \['keep'\]"):
        build_prioritization("dtp", keep=0.7)


# --------------------------------------------------------------------------- DDP


def _ddp_worker(rank: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        strategy = build_prioritization("mdrp", num_samples=4, kpi_ema=0.5, keep=1.0, **NO_SCHEDULE)
        kappa = [0.2, 0.4] if rank == 0 else [0.6, 0.8]
        _step(strategy, {t: kappa for t in TASKS}, ids=[0, 1] if rank == 0 else [2, 1])
        strategy.sync()
        results[rank] = (
            strategy.kappa_bar["segmentation"],
            strategy.memory.values[0].tolist(),
            strategy.memory.seen[0].tolist(),
        )
    finally:
        dist.destroy_process_group()


def test_sync_makes_the_state_equal_on_all_ranks(tmp_path):
    context = mp.get_context("spawn")
    with context.Manager() as manager:
        results = manager.dict()
        processes = [
            context.Process(target=_ddp_worker, args=(rank, str(tmp_path / "init"), results))
            for rank in range(2)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [process.exitcode for process in processes] == [0, 0]
        first, second = results[0], results[1]
    assert first == second
    kappa_bar, values, seen = first
    assert kappa_bar == pytest.approx((0.3 + 0.7) / 2)  # mean of the ranks' batch KPIs
    # sample 1 was written by both ranks (0.4 and 0.8): averaged; 3 never seen
    assert values == pytest.approx([0.2, 0.6, 0.6, 0.0])
    assert seen == [True, True, True, False]
