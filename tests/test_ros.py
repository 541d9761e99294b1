"""The ROS 2 node (DESIGN.md 4.5): image conversion without a ROS graph, then one end-to-end run
of ``cathtrack_ros.node`` in its own process against the Python Tracker on the same frames."""

from __future__ import annotations

import math
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

try:
    import rclpy
except ImportError as error:  # the [ros] extra is optional
    pytest.skip(f"ROS 2 not installed (import rclpy: {error})", allow_module_level=True)

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import Header

import cathtrack
from cathtrack.data.synth import preset, render_sequence
from cathtrack_ros.convert import array_to_image, image_to_array
from cathtrack_ros.node import IMAGE_QOS

# lark (imported by the ROS message packages) still uses the deprecated sre modules.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")


def _image(encoding: str, width: int, height: int, step: int, data: bytes, big: bool = False):
    return Image(
        height=height, width=width, encoding=encoding, is_bigendian=int(big), step=step, data=data
    )


PIXELS = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000 + 7


def test_mono8_drops_row_padding():
    rows = np.zeros((3, 6), np.uint8)
    rows[:, :4] = PIXELS % 256
    array = image_to_array(_image("mono8", 4, 3, 6, rows.tobytes()))
    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array, PIXELS % 256)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("big", [False, True])
def test_16_bit_in_either_byte_order(encoding, big):
    data = PIXELS.astype(">u2" if big else "<u2").tobytes()
    array = image_to_array(_image(encoding, 4, 3, 8, data, big))
    assert array.dtype == np.uint16 and array.dtype.byteorder in "=|"
    np.testing.assert_array_equal(array, PIXELS)


def test_32fc1():
    values = PIXELS.astype(np.float32) / 3.0
    array = image_to_array(_image("32FC1", 4, 3, 16, values.astype("<f4").tobytes()))
    assert array.dtype.byteorder in "=|"  # not "<": the native engine refuses that
    np.testing.assert_array_equal(array, values)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_comes_out_bgr(encoding):
    bgr = np.stack([PIXELS % 256, PIXELS % 7, PIXELS % 5], axis=-1).astype(np.uint8)
    sent = bgr[..., ::-1] if encoding == "rgb8" else bgr
    array = image_to_array(_image(encoding, 4, 3, 12, np.ascontiguousarray(sent).tobytes()))
    assert array.shape == (3, 4, 3)
    np.testing.assert_array_equal(array, bgr)


@pytest.mark.parametrize(
    "msg, message",
    [
        (_image("yuv422", 4, 3, 8, bytes(24)), "unsupported encoding 'yuv422'"),
        (_image("mono8", 0, 3, 0, b""), "empty image: 0x3"),
        (_image("mono8", 4, 0, 4, b""), "empty image: 4x0"),
        (_image("mono16", 4, 3, 4, bytes(24)), "step 4 is shorter than one row"),
        (_image("rgb8", 4, 3, 12, bytes(35)), "data has 35 bytes"),
        (_image("32FC1", 4, 3, 20, bytes(48)), "needs 60"),
    ],
)
def test_malformed_messages_raise(msg, message):
    with pytest.raises(ValueError, match=message):
        image_to_array(msg)


@pytest.mark.parametrize(
    "array",
    [
        PIXELS.astype(np.uint8),
        PIXELS,
        PIXELS.astype(np.float32) / 7,
        np.stack([PIXELS % 256] * 3, -1).astype(np.uint8),
    ],
)
def test_array_to_image_round_trip(array):
    np.testing.assert_array_equal(image_to_array(array_to_image(array, Header())), array)


def test_array_to_image_refuses_other_arrays():
    with pytest.raises(ValueError, match="no image encoding for a int32"):
        array_to_image(PIXELS.astype(np.int32), Header())


# --- one node in its own process ----------------------------------------------------------------

NODE_ARGS = ["-p", "backend:=python", "-p", "device:=cpu", "-p", "temporal:=false"]
TIMEOUT_S = 20.0


def _frames() -> list[tuple[np.ndarray, Image]]:
    """(array the node must see, message) in four encodings, stamps 100.k s."""
    images = [s.image for s in render_sequence(preset("clinical"), seed=3, n_frames=4)]
    mono8 = np.rint(images[0] * 255).astype(np.uint8)
    mono16 = np.rint(images[1] * 65535).astype(np.uint16)
    colour = np.rint(images[3] * 255).astype(np.uint8)
    bgr = np.stack([colour, colour // 2 + 60, 255 - colour], axis=-1)
    rgb = array_to_image(np.ascontiguousarray(bgr[..., ::-1]), Header())
    rgb.encoding = "rgb8"
    messages = [
        array_to_image(mono8, Header()),
        array_to_image(mono16, Header()),
        array_to_image(images[2], Header()),
        rgb,
    ]
    for k, msg in enumerate(messages):
        msg.header = Header(stamp=Time(sec=100 + k, nanosec=1000 * k), frame_id="detector")
    return list(zip([mono8, mono16, images[2], bgr], messages, strict=True))


class _Listener:
    """Subscribes to the node's outputs from a spinning executor thread."""

    def __init__(self, context) -> None:
        self.node = rclpy.create_node("cathtrack_test", context=context)
        self.publisher = self.node.create_publisher(Image, "image", IMAGE_QOS)
        self.tips: dict[tuple[int, int], PoseArray] = {}
        self.electrodes: dict[tuple[int, int], PoseArray] = {}
        self.diagnostics: list[DiagnosticArray] = []
        self.lock = threading.Lock()
        for topic, store in (("/cathtrack/catheter_tips", self.tips),
                             ("/cathtrack/electrodes", self.electrodes)):  # fmt: skip
            self.node.create_subscription(PoseArray, topic, self._keep(store), 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnose, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _keep(self, store):
        def callback(msg: PoseArray) -> None:
            with self.lock:
                store[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

        return callback

    def _diagnose(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.diagnostics.append(msg)

    def result(self, node: subprocess.Popen, msg: Image) -> tuple[PoseArray, PoseArray]:
        """Publishes ``msg`` (again every 2 s: the image QoS is best effort) until the tips and
        electrodes with its stamp are back."""
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert node.poll() is None, "the node exited"
            if self.publisher.get_subscription_count() > 0:
                self.publisher.publish(msg)
            resend = time.monotonic() + 2.0
            while time.monotonic() < min(resend, deadline):
                with self.lock:
                    if key in self.tips and key in self.electrodes:
                        return self.tips[key], self.electrodes[key]
                time.sleep(0.02)
        raise AssertionError(f"no result for the frame stamped {key} in {TIMEOUT_S} s")

    def counted(self, node: subprocess.Popen, msg: Image, key: str, count: int) -> None:
        """Publishes ``msg`` (again every 3 s) until /diagnostics reports ``key`` >= ``count``."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert node.poll() is None, "the node exited"
            self.publisher.publish(msg)
            resend = time.monotonic() + 3.0
            while time.monotonic() < min(resend, deadline):
                if self.diagnostic(key) >= count:
                    return
                time.sleep(0.05)
        raise AssertionError(f"/diagnostics never reported {key} >= {count}")

    def diagnostic(self, key: str) -> int:
        with self.lock:
            values = [
                int(value.value)
                for msg in self.diagnostics
                for status in msg.status
                if status.name == "cathtrack: tracker"
                for value in status.values
                if value.key == key
            ]
        return max(values, default=-1)

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join()
        self.node.destroy_node()


def _xy(poses: PoseArray) -> np.ndarray:
    return np.array([[p.position.x, p.position.y] for p in poses.poses]).reshape(-1, 2)


def test_node_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log_path = tmp_path / "node.log"
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "cathtrack_ros.node", "--ros-args", *NODE_ARGS],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    context = rclpy.Context()
    rclpy.init(context=context)
    listener = _Listener(context)
    tracker = cathtrack.Tracker(backend="python", device="cpu", temporal=False)
    try:
        found = 0
        for array, msg in _frames():
            tips, electrodes = listener.result(node, msg)
            expected = tracker(array)
            assert tips.header == electrodes.header == msg.header
            np.testing.assert_allclose(_xy(electrodes), expected.electrodes, atol=1e-4)
            np.testing.assert_allclose(_xy(tips), [c.tip for c in expected.catheters], atol=1e-4)
            for pose, catheter in zip(tips.poses, expected.catheters, strict=True):
                yaw = 2 * math.atan2(pose.orientation.z, pose.orientation.w)
                dx, dy = catheter.tip_direction
                assert math.isclose(math.cos(yaw), dx, abs_tol=1e-6) or (dx, dy) == (0, 0)
                assert math.isclose(math.sin(yaw), dy, abs_tol=1e-6) or (dx, dy) == (0, 0)
            found += len(expected.electrodes)
        assert found > 0, "no electrode in any frame: the comparison tested nothing"

        malformed = [_image("mono8", 256, 256, 256, bytes(100)), _image("yuv422", 4, 3, 8, b"")]
        for count, msg in enumerate(malformed, start=1):
            listener.counted(node, msg, "messages_malformed", count)
        array, msg = _frames()[0]
        msg.header.stamp = Time(sec=201)
        tips, _ = listener.result(node, msg)
        assert len(tips.poses) == len(tracker(array).catheters)

        node.send_signal(signal.SIGINT)
        assert node.wait(timeout=TIMEOUT_S) == 0, log_path.read_text()
    except BaseException:
        print(log_path.read_text())
        raise
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        listener.close()
        rclpy.shutdown(context=context)
