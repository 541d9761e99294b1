"""What a ROS user finds around the node: the command lines' --help and --version (in their own
processes), the parameter file against the parameters the node declares, the package.xml files
against what the code imports, the typed message through serialisation, and the subscriber
example of docs/ros.md run in its own process against messages of known content."""

from __future__ import annotations

import array
import ast
import dataclasses
import re
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

try:
    import rclpy
except ImportError as error:  # the [ros] extra is optional
    pytest.skip(f"ROS 2 not installed (import rclpy: {error})", allow_module_level=True)

import yaml
from builtin_interfaces.msg import Time
from cathtrack_msgs.msg import Catheter, CatheterArray
from rclpy.serialization import deserialize_message, serialize_message
from ros_support import TEST_MODEL, TIMEOUT_S, check_catheters, ros_domain, synthetic_frames
from sensor_msgs.msg import Image
from std_msgs.msg import Header

import cathtrack
import cathtrack_ros
from cathtrack_ros.messages import CatheterArrayBuilder

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ros" / "cathtrack_ros"
INTERFACES = ROOT / "ros" / "cathtrack_msgs"
BIN = Path(sys.executable).parent


# --- command lines ------------------------------------------------------------------------------


@pytest.mark.parametrize("program", ["cathtrack-ros", "cathtrack-ros-replay"])
def test_help_and_version_answer_without_starting_ros(program, tmp_path):
    """A node that started would run until interrupted: each of these must end by itself, with
    nothing of ROS in its output (run in a private domain all the same)."""
    with ros_domain():
        shown = subprocess.run(
            [BIN / program, "--help"], capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"usage: {program}")
        assert "examples:" in shown.stdout and "--ros-args" in shown.stdout
        assert "[INFO]" not in shown.stdout + shown.stderr

        told = subprocess.run(
            [BIN / program, "--version"], capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert told.returncode == 0, told.stderr
        expected = (
            f"{program} {cathtrack.__version__} "
            f"(ROS 2 {cathtrack_ros.ROS_DISTRIBUTION}, rclpy {version('ros-rclpy')})"
        )
        assert told.stdout.strip() == expected


def test_unknown_option_is_refused_in_one_line():
    refused = subprocess.run(
        [BIN / "cathtrack-ros", "--executer", "x"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "cathtrack-ros: error: unrecognized arguments: --executer x"
    )


# --- parameters ---------------------------------------------------------------------------------


def _node_parameters(*ros_args: str) -> dict[str, object]:
    """Names and values of the parameters a CathtrackNode declares (not rclpy's own)."""
    from cathtrack_ros.node import CathtrackNode

    context = rclpy.Context()
    rclpy.init(args=["test", "--ros-args", *ros_args], context=context)
    try:
        node = CathtrackNode(context=context)
        try:
            own = {"use_sim_time", "start_type_description_service"}
            parameters = node.get_parameters_by_prefix("")
            return {name: p.value for name, p in parameters.items() if name not in own}
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_parameter_file_has_every_parameter_with_its_default():
    listed = yaml.safe_load(cathtrack_ros.PARAMETERS_FILE.read_text())["cathtrack"][
        "ros__parameters"
    ]
    with ros_domain():
        defaults = _node_parameters()
        # read back through rcl's own YAML parser: a value of the wrong type would fail here
        loaded = _node_parameters("--params-file", str(cathtrack_ros.PARAMETERS_FILE))
    assert listed == defaults
    assert {k: type(v) for k, v in listed.items()} == {k: type(v) for k, v in defaults.items()}
    assert loaded == defaults


# --- package.xml --------------------------------------------------------------------------------


def _ros_imports() -> set[str]:
    """Top-level ROS packages the node's modules import (rclpy, *_msgs, *_interfaces)."""
    names = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
    return {n for n in names if n == "rclpy" or n.endswith(("_msgs", "_interfaces"))}


def test_package_manifests_name_what_the_code_uses():
    from catkin_pkg.package import parse_package

    node = parse_package(PACKAGE / "package.xml")
    interfaces = parse_package(INTERFACES / "package.xml")
    assert (node.name, interfaces.name) == ("cathtrack_ros", "cathtrack_msgs")
    assert node.version == interfaces.version == version("cathtrack")
    assert _ros_imports() <= {d.name for d in node.exec_depends}
    assert "rosidl_interface_packages" in {g.name for g in interfaces.member_of_groups}
    messages = re.findall(r'"(msg/\w+\.msg)"', (INTERFACES / "CMakeLists.txt").read_text())
    assert sorted(messages) == sorted(
        str(p.relative_to(INTERFACES)) for p in INTERFACES.glob("msg/*.msg")
    )
    used = set(re.findall(r"^(\w+)/\w+", "".join(p.read_text() for p in INTERFACES.glob("msg/*"))))
    assert used <= {d.name for d in interfaces.build_depends}


def test_docs_show_the_message_definitions():
    docs = (ROOT / "docs" / "ros.md").read_text()
    for path in INTERFACES.glob("msg/*.msg"):
        shown = re.search(rf"`cathtrack_msgs/msg/{path.name}`:\n\n```\n(.*?)```", docs, re.DOTALL)
        assert shown, f"docs/ros.md does not show {path.name}"
        assert shown.group(1) == path.read_text(), f"docs/ros.md shows another {path.name}"


# --- the typed message --------------------------------------------------------------------------


def test_typed_message_round_trip_and_reuse():
    """Two results through one builder, the second with fewer catheters and no pixel spacing:
    what comes out of serialisation is the second result, nothing left of the first."""
    tracker = cathtrack.Tracker(TEST_MODEL, backend="python", device="cpu", temporal=True)
    results = [tracker(frame) for frame in synthetic_frames(seed=3, count=4)]
    first = max(results, key=lambda r: len(r.catheters))
    assert len(first.catheters) >= 2 and first.electrode_track_ids is not None
    second = dataclasses.replace(first, catheters=first.catheters[1:])
    header = Header(stamp=Time(sec=5, nanosec=6), frame_id="detector")
    image = Image(header=header)
    build = CatheterArrayBuilder()
    size = first.mask.shape[::-1]
    for result, spacing_m in ((first, 0.25e-3), (second, 0.0), (first, 0.1e-3)):
        msg = build(header, result, size, spacing_m)
        msg.latency_ms = msg.total_ms + 1.0
        back = deserialize_message(serialize_message(msg), CatheterArray)
        check_catheters(back, image, result, spacing_m)


# --- the subscriber example of docs/ros.md ------------------------------------------------------


def _example_code() -> str:
    text = (ROOT / "docs" / "ros.md").read_text()
    match = re.search(r"## Following the ablation catheter.*?```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/ros.md has no example under '## Following the ablation catheter'"
    return match.group(1)


def _catheter(track_id: int, kind: str, score: float, x: float, y: float) -> Catheter:
    x, y = float(x), float(y)  # a float64 field given an int would be read as garbage
    msg = Catheter(track_id=track_id, type=kind, type_score=score)
    msg.tip_px.position.x, msg.tip_px.position.y = x, y
    msg.tip_m.position.x, msg.tip_m.position.y = x * 2e-4, y * 2e-4
    msg.tip_direction.x = 1.0
    msg.electrodes_px = array.array("d", [x, y, x + 3, y + 4])
    return msg


# (catheters, pixel_spacing_m) per frame, then what the example must print for it: the track id
# it follows and the tip, or None for "no ablation catheter".
FRAMES = [
    ([_catheter(-1, "ablation", 0.9, 1, 2), _catheter(3, "cs_decapolar", 0.8, 5, 6)], 0.0),
    ([_catheter(7, "ablation", 0.6, 10, 20), _catheter(9, "ablation", 0.8, 30, 40)], 0.0),
    ([_catheter(7, "ablation", 0.9, 11, 21), _catheter(9, "ablation", 0.5, 31, 41)], 0.0),
    ([_catheter(9, "unknown", 0.0, 32, 42), _catheter(7, "ablation", 0.9, 12, 22)], 0.0),
    ([_catheter(7, "ablation", 0.9, 13, 23), _catheter(2, "quadripolar", 0.7, 0, 0)], 0.0),
    ([_catheter(7, "ablation", 0.9, 14, 24)], 2e-4),
]
EXPECTED = [None, (9, 30, 40, "px"), (9, 31, 41, "px"), (9, 32, 42, "px"), (7, 13, 23, "px"),
            (7, 14 * 2e-4, 24 * 2e-4, "m")]  # fmt: skip
LINE = re.compile(
    r"(\d+)\.(\d{9}): (?:no ablation catheter|track (-?\d+) \((\w+)\) tip (\S+) (\S+) (px|m),)"
)


def test_subscriber_example_follows_the_ablation_catheter(tmp_path):
    """The example picks the best-scored ablation catheter with a confirmed track, then follows
    that track id whatever its type reads in later frames, until the track ends."""
    script = tmp_path / "follow_ablation_tip.py"
    script.write_text(_example_code())
    with ros_domain():
        example = subprocess.Popen(
            [sys.executable, "-u", str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(example.stdout), daemon=True)
        reader.start()
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node("example_test", context=context)
        try:
            publisher = node.create_publisher(CatheterArray, "/cathtrack/catheters", 10)
            deadline = time.monotonic() + TIMEOUT_S
            while publisher.get_subscription_count() == 0:
                assert example.poll() is None, "".join(lines)
                assert time.monotonic() < deadline, "the example never subscribed"
                time.sleep(0.05)
            time.sleep(0.5)  # the example's side of the match (reliable from here on)
            for k, (catheters, spacing) in enumerate(FRAMES):
                header = Header(stamp=Time(sec=100 + k, nanosec=k), frame_id="detector")
                publisher.publish(
                    CatheterArray(header=header, catheters=catheters, pixel_spacing_m=spacing)
                )
                time.sleep(0.05)
            while sum(bool(LINE.match(line)) for line in lines) < len(FRAMES):
                assert example.poll() is None, "".join(lines)
                assert time.monotonic() < deadline, f"the example printed: {lines}"
                time.sleep(0.05)
        finally:
            node.destroy_node()
            rclpy.shutdown(context=context)
            example.send_signal(signal.SIGINT)
            status = example.wait(timeout=TIMEOUT_S)
            reader.join(timeout=TIMEOUT_S)
    output = "".join(lines)
    assert status == 0 and "Traceback" not in output, output
    printed = [LINE.match(line) for line in lines if LINE.match(line)]
    for k, (match, expected) in enumerate(zip(printed, EXPECTED, strict=True)):
        assert (int(match[1]), int(match[2])) == (100 + k, k)
        if expected is None:
            assert match[3] is None, match[0]
            continue
        track_id, x, y, unit = expected
        assert int(match[3]) == track_id and match[7] == unit, match[0]
        np.testing.assert_allclose([float(match[5]), float(match[6])], (x, y), rtol=1e-5)
