"""The synthetic engine reuses per-thread scratch arrays between frames (cathtrack.data.synth
.scratch): nothing may leak from one frame, size or thread into another."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cathtrack.data.synth import preset, render, render_sequence
from cathtrack.data.synth.scratch import scratch

# Every branch that uses scratch arrays: shutters and intensifier (hard), the vendor chain with
# the recursive filter, exports and vessels (real), and two sizes.
JOBS = [("hard", 96, seed) for seed in (0, 1, 2)] + [("real", 64, seed) for seed in (0, 3, 5)]


def _frame(job: tuple[str, int, int]):
    name, size, seed = job
    return render(preset(name, size=size), seed)


def _assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.electrodes, b.electrodes)
    np.testing.assert_array_equal(a.boxes, b.boxes)


def test_frames_do_not_depend_on_what_was_rendered_before():
    alone = [_frame(job) for job in JOBS]
    for job, expected in zip(reversed(JOBS), reversed(alone), strict=True):
        _assert_same(_frame(job), expected)
    # A sequence's frames (the recursive filter carries the previous signal) stay the same
    # when other frames are rendered in between.
    config = preset("real", size=64)
    sequence = render_sequence(config, 7, 3)
    _frame(JOBS[0])
    for k, expected in enumerate(render_sequence(config, 7, 3)):
        _assert_same(sequence[k], expected)


def test_threads_render_the_same_frames():
    alone = [_frame(job) for job in JOBS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(_frame, JOBS * 2))
    for got, expected in zip(threaded, alone * 2, strict=True):
        _assert_same(got, expected)


def test_scratch_buffers_grow_and_are_per_name():
    small = scratch("test-buffer", (4, 5), np.float32)
    assert small.shape == (4, 5) and small.dtype == np.float32 and small.flags.c_contiguous
    small[...] = 1.0
    again = scratch("test-buffer", (2, 3), np.float32)  # a view of the same, larger buffer
    assert np.shares_memory(small, again)
    larger = scratch("test-buffer", (10, 10), np.float32)
    assert larger.shape == (10, 10) and not np.shares_memory(small, larger)
    assert not np.shares_memory(larger, scratch("other-buffer", (10, 10), np.float32))
    assert scratch("test-buffer", (3,), np.int64).dtype == np.int64
