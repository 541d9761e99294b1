"""The node against bad and unusual input (malformed messages, zero-size and 4K images,
bursts at 10x the rate, flat memory): each case is counted in /diagnostics and none stops it.
The node and the replay tool run with a Fast DDS profile for large images (see docs/ros.md)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

try:
    import rclpy  # noqa: F401
except ImportError as error:  # the [ros] extra is optional
    pytest.skip(f"ROS 2 not installed (import rclpy: {error})", allow_module_level=True)

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from ros_support import (
    MALFORMED,
    PYTHON_NODE,
    TEST_MODEL,
    TIMEOUT_S,
    check_outputs,
    node_and_client,
    stamped,
    synthetic_frames,
)
from sensor_msgs.msg import Image
from std_msgs.msg import Header

import cathtrack
from cathtrack_ros import LARGE_IMAGES_PROFILE
from cathtrack_ros.convert import array_to_image

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")

NORMAL_RATE_HZ = 15.0
# Every message taken from `image` ends in exactly one of these (once the node is idle).
OUTCOMES = ("messages_malformed", "frames_ignored", "frames_processed", "frames_failed")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ros")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(LARGE_IMAGES_PROFILE))
        with node_and_client(folder / "node.log", *PYTHON_NODE, "-p", "temporal:=false") as (
            node,
            client,
        ):
            client.wait_subscribed(node)
            yield node, client


@pytest.fixture(scope="module")
def tracker():
    return cathtrack.Tracker(TEST_MODEL, backend="python", device="cpu", temporal=False)


def _counts(client, status: DiagnosticStatus) -> dict[str, int]:
    keys = ("messages_received", "messages_missed", *OUTCOMES)
    return {key: client.count(key, status) for key in keys}


def _idle_counts(node, client) -> dict[str, int]:
    """Counts once every message received so far has an outcome."""

    def settled(status: DiagnosticStatus) -> bool:
        counts = _counts(client, status)
        return counts["messages_received"] == sum(counts[k] for k in OUTCOMES)

    return _counts(client, client.wait_status(node, settled, what="all messages accounted for"))


def test_malformed_messages_are_counted_by_kind(running, tracker):
    node, client = running
    warned = False
    counted = dict.fromkeys(("encoding", "empty", "step", "data"), 0)
    for msg, kind, _ in MALFORMED:
        key = f"malformed_{kind}"
        status = client.wait_count(node, key, counted[kind] + 1, resend=stamped(msg))
        counted[kind] = client.count(key, status)
        warned |= status.level == DiagnosticStatus.WARN and "malformed" in status.message
    assert warned, "a period with malformed messages is a WARN"
    logged = node.log().count("malformed image ignored")
    assert logged >= 1

    # 20 more within half a second: each counted (or missed), logged at most once (throttled)
    before = _idle_counts(node, client)
    msg = MALFORMED[0][0]
    for _ in range(20):
        client.publisher.publish(stamped(msg))
        time.sleep(0.025)

    def all_twenty(status: DiagnosticStatus) -> bool:
        after = _counts(client, status)
        return sum(after[k] - before[k] for k in ("messages_malformed", "messages_missed")) == 20

    status = client.wait_status(node, all_twenty, what="20 more malformed messages")
    assert client.count("messages_malformed", status) - before["messages_malformed"] >= 10
    assert node.log().count("malformed image ignored") <= logged + 1
    frame = synthetic_frames()[0]
    msg = stamped(array_to_image(frame, Header()))
    check_outputs(client.result(node, msg), msg, tracker(frame))


def _with_nan_stripe(frame: np.ndarray) -> np.ndarray:
    frame = frame.copy()
    frame[100:110] = np.nan
    frame[:, 40] = np.inf
    return frame


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda f: np.rint(f[:1, :1] * 255).astype(np.uint8), id="1x1-mono8"),
        pytest.param(_with_nan_stripe, id="32FC1-nan-inf"),
    ],
)
def test_unusual_frames_are_tracked(running, tracker, make):
    node, client = running
    frame = make(synthetic_frames()[1])
    msg = stamped(array_to_image(frame, Header()))
    check_outputs(client.result(node, msg), msg, tracker(frame))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8], ids=["mono16", "mono8"])
def test_4k_frames_are_tracked(running, tracker, tmp_path, dtype):
    """3840x2160 frames, sent by cathtrack-ros-replay (a process of its own reads the large-image
    profile: Fast DDS reads its profiles once per process), again and again until one is back."""
    node, client = running
    frame = np.rint(cv2.resize(synthetic_frames()[1], (3840, 2160)) * np.iinfo(dtype).max)
    frame = frame.astype(dtype)
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    with client.lock:
        before = set(client.received["catheter_tips"])
    replay = subprocess.Popen(
        [sys.executable, "-m", "cathtrack_ros.replay", str(tmp_path), "--rate", "2", "--loop"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 2 * TIMEOUT_S
        outputs = None
        while outputs is None:
            node.check_alive()
            assert replay.poll() is None, replay.stderr.read()
            assert time.monotonic() < deadline, f"no 4K frame tracked: {client.status()}"
            with client.lock:
                new = sorted(set(client.received["catheter_tips"]) - before)
            if new:
                sec, nanosec = new[0]
                msg = Image(
                    header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="detector")
                )
                outputs = client.outputs(msg)
            time.sleep(0.05)
    finally:
        replay.send_signal(signal.SIGINT)
        replay.communicate(timeout=TIMEOUT_S)
    check_outputs(outputs, msg, tracker(frame))


def test_burst_at_ten_times_the_rate(running, tracker):
    """Two seconds at 10x the normal rate: frames are replaced in the depth-1 history while the
    node tracks (counted as missed), never queued, and the newest frame is tracked right after
    the burst."""
    node, client = running
    before = _idle_counts(node, client)
    frames = [np.rint(f * 255).astype(np.uint8) for f in synthetic_frames(seed=5, count=8)]
    messages = [array_to_image(f, Header()) for f in frames]
    period = 1.0 / (10 * NORMAL_RATE_HZ)
    sent = int(2.0 / period)
    next_time = time.monotonic()
    for k in range(sent):
        client.publisher.publish(stamped(messages[k % len(messages)]))
        next_time += period
        time.sleep(max(0.0, next_time - time.monotonic()))
    last = stamped(array_to_image(frames[0], Header()))
    started = time.monotonic()
    client.publisher.publish(last)
    sent += 1
    deadline = started + TIMEOUT_S
    while (outputs := client.outputs(last)) is None:
        node.check_alive()
        assert time.monotonic() < deadline, "the newest frame was never tracked"
        time.sleep(0.01)
    caught_up_s = time.monotonic() - started
    check_outputs(outputs, last, tracker(frames[0]))

    after = _idle_counts(node, client)
    delta = {key: after[key] - before[key] for key in after}
    print(f"{sent} sent in a burst: {delta}, newest tracked {caught_up_s:.2f} s after")
    assert delta["messages_received"] + delta["messages_missed"] == sent
    assert delta["messages_missed"] >= sent // 2
    assert delta["frames_processed"] < sent // 2
    assert caught_up_s < 5.0, f"{caught_up_s:.1f} s after the burst: frames were queued"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError(f"no VmRSS for process {pid}")


def test_memory_stays_flat(running):
    """1500 messages of 256 KiB (a shorter benchmarks/ros_soak.py), most of them dropped: were
    each message kept, the node would grow by hundreds of MiB, each tracked frame, by tens."""
    node, client = running
    frames = [
        np.rint(cv2.resize(f, (512, 512)) * 255).astype(np.uint8)
        for f in synthetic_frames(seed=6, count=8)
    ]
    messages = [array_to_image(f, Header()) for f in frames]
    rss = []
    period = 1.0 / 300.0
    next_time = time.monotonic()
    for k in range(1500):
        if k % 100 == 0:
            rss.append(_rss_mib(node.process.pid))
        client.publisher.publish(stamped(messages[k % len(messages)]))
        next_time += period
        time.sleep(max(0.0, next_time - time.monotonic()))
    counts = _idle_counts(node, client)
    rss.append(_rss_mib(node.process.pid))
    print(f"node RSS MiB every 100 messages: {[round(r, 1) for r in rss]}; {counts}")
    # medians: RSS moves by a few MiB with the frame in flight; the first frames warm up
    growth = np.median(rss[-4:]) - np.median(rss[2:6])
    assert growth < 16.0, f"RSS grew by {growth:.1f} MiB: {rss}"
    assert counts["frames_processed"] >= 10, "too few frames tracked to tell"
    node.check_alive()
