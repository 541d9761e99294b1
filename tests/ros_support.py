"""Shared by the test_ros*.py files: malformed messages, a node in its own process, the test's
client node, and checks of the node's outputs against ``cathtrack.Tracker``.

Import it only after ``rclpy`` imported (the test files skip themselves without ROS 2).
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from cathtrack_msgs.msg import CatheterArray
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Point, PoseArray
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

import cathtrack
from cathtrack.data.synth import preset, render_sequence
from cathtrack.tracker import default_model_path
from cathtrack_ros.convert import array_to_image
from cathtrack_ros.node import IMAGE_QOS


def image_message(
    encoding: str, width: int, height: int, step: int, data: bytes, big: bool = False
):
    return Image(
        height=height, width=width, encoding=encoding, is_bigendian=int(big), step=step, data=data
    )


MALFORMED = [
    (image_message("yuv422", 4, 3, 8, bytes(24)), "encoding", "unsupported encoding 'yuv422'"),
    (image_message("mono8", 0, 3, 0, b""), "empty", "empty image: 0x3"),
    (image_message("mono8", 4, 0, 4, b""), "empty", "empty image: 4x0"),
    (image_message("mono16", 4, 3, 4, bytes(24)), "step", "step 4 is shorter than one row"),
    (image_message("rgb8", 4, 3, 12, bytes(35)), "data", "data has 35 bytes"),
    (image_message("32FC1", 4, 3, 20, bytes(48)), "data", "needs 60"),
]


# --- a node in its own process and a client -----------------------------------

# The node's mechanics do not depend on the network: the small shipped model keeps frames fast.
TEST_MODEL = default_model_path().parent / "cathtrack_lite.safetensors"
PYTHON_NODE = ["-p", f"model:={TEST_MODEL}", "-p", "backend:=python", "-p", "device:=cpu",
               "-p", "threads:=1"]  # fmt: skip
TIMEOUT_S = 20.0
TRACKER_STATUS = "cathtrack: tracker"
RESULT_TOPICS = ("catheters", "catheter_tips", "electrodes", "markers")
RESULT_TYPES = (CatheterArray, PoseArray, PoseArray, MarkerArray)
_stamps = iter(range(1000, 10**9))


def stamped(msg: Image, frame_id: str = "detector") -> Image:
    """``msg`` with a stamp no other message of this test session has (results are matched to
    frames by stamp)."""
    msg.header = Header(stamp=Time(sec=next(_stamps), nanosec=123_456), frame_id=frame_id)
    return msg


def stamp_key(msg) -> tuple[int, int]:
    """The stamp of a message's header (of its first marker for a MarkerArray)."""
    header = msg.markers[0].header if isinstance(msg, MarkerArray) else msg.header
    return header.stamp.sec, header.stamp.nanosec


@contextlib.contextmanager
def ros_domain() -> Iterator[None]:
    """A random ROS_DOMAIN_ID and localhost-only discovery for the processes started inside."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROS_DOMAIN_ID", str(random.randint(1, 101)))
        patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        yield


class NodeProcess:
    """``python -m cathtrack_ros.node --ros-args ARGS`` with its output in ``log_path``."""

    def __init__(self, log_path: Path, *ros_args: str) -> None:
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cathtrack_ros.node", "--ros-args", *ros_args],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def check_alive(self) -> None:
        assert self.process.poll() is None, f"the node exited:\n{self.log()}"

    def log(self) -> str:
        return self.log_path.read_text()

    def interrupt(self) -> int:
        """SIGINT, then the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=TIMEOUT_S)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Client:
    """The test's node, spun by a thread of this process: publishes ``image``, keeps what the
    node publishes (by stamp) and its latest diagnostics, calls its services."""

    def __init__(self, context) -> None:
        self.node = rclpy.create_node("cathtrack_test", context=context)
        self.publisher = self.node.create_publisher(Image, "image", IMAGE_QOS)
        self.lock = threading.Lock()
        self.received: dict[str, dict[tuple[int, int], object]] = {}
        self.subscriptions = {}
        self.statuses: list[DiagnosticStatus] = []
        for name, msg_type in zip(RESULT_TOPICS, RESULT_TYPES, strict=True):
            self.subscribe(name, msg_type)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnose, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def subscribe(self, name: str, msg_type) -> None:
        """Keeps the messages of ``/cathtrack/NAME`` in ``received[NAME]``."""
        store = self.received.setdefault(name, {})

        def keep(msg) -> None:
            with self.lock:
                store[stamp_key(msg)] = msg

        self.subscriptions[name] = self.node.create_subscription(
            msg_type, f"/cathtrack/{name}", keep, 10
        )

    def unsubscribe(self, name: str) -> None:
        self.node.destroy_subscription(self.subscriptions.pop(name))

    def _diagnose(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.statuses += [s for s in msg.status if s.name == TRACKER_STATUS]

    def has(self, name: str, msg: Image) -> bool:
        with self.lock:
            return stamp_key(msg) in self.received.get(name, {})

    def outputs(self, msg: Image, names: tuple[str, ...] = RESULT_TOPICS) -> dict | None:
        """The messages of ``names`` with the stamp of ``msg``, or None until all are here."""
        key = stamp_key(msg)
        with self.lock:
            if all(key in self.received[name] for name in names):
                return {name: self.received[name][key] for name in names}
        return None

    def result(
        self, node: NodeProcess, msg: Image, names: tuple[str, ...] = RESULT_TOPICS
    ) -> dict[str, object]:
        """Publishes ``msg`` (again every 2 s: the image QoS is best effort) until the messages
        of ``names`` with its stamp are back."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            node.check_alive()
            if self.publisher.get_subscription_count() > 0:
                self.publisher.publish(msg)
            resend = time.monotonic() + 2.0
            while time.monotonic() < min(resend, deadline):
                outputs = self.outputs(msg, names)
                if outputs is not None:
                    return outputs
                time.sleep(0.01)
        raise AssertionError(f"no {names} for the frame stamped {stamp_key(msg)} in {TIMEOUT_S} s")

    def status(self) -> DiagnosticStatus | None:
        with self.lock:
            return self.statuses[-1] if self.statuses else None

    def value(self, key: str, status: DiagnosticStatus | None = None) -> str:
        status = status or self.status()
        values = {v.key: v.value for v in status.values} if status else {}
        return values.get(key, "")

    def count(self, key: str, status: DiagnosticStatus | None = None) -> int:
        return int(self.value(key, status) or -1)

    def wait_status(
        self,
        node: NodeProcess,
        condition: Callable[[DiagnosticStatus], bool],
        resend: Image | None = None,
        what: str = "",
    ) -> DiagnosticStatus:
        """Waits for a diagnostics status published from now on that satisfies ``condition``,
        publishing ``resend`` (if any) every 3 s meanwhile."""
        with self.lock:
            seen = len(self.statuses)
        deadline = time.monotonic() + TIMEOUT_S
        next_send = time.monotonic()
        while time.monotonic() < deadline:
            node.check_alive()
            if resend is not None and time.monotonic() >= next_send:
                self.publisher.publish(resend)
                next_send = time.monotonic() + 3.0
            with self.lock:
                fresh, seen = self.statuses[seen:], len(self.statuses)
            for status in fresh:
                if condition(status):
                    return status
            time.sleep(0.05)
        raise AssertionError(f"/diagnostics never reported {what}; last: {self.status()}")

    def wait_count(
        self, node: NodeProcess, key: str, at_least: int, resend: Image | None = None
    ) -> DiagnosticStatus:
        """The first status from now on with the counter ``key`` >= ``at_least``."""
        return self.wait_status(
            node, lambda s: self.count(key, s) >= at_least, resend, f"{key} >= {at_least}"
        )

    def wait_subscribed(self, node: NodeProcess, subscribed: bool = True) -> None:
        """Waits until the node's ``image`` subscription is (or is no longer) visible here."""
        deadline = time.monotonic() + TIMEOUT_S
        while (self.publisher.get_subscription_count() > 0) != subscribed:
            node.check_alive()
            assert time.monotonic() < deadline, f"image subscription never became {subscribed}"
            time.sleep(0.05)

    def call(self, srv_type, name: str, request):
        client = self.node.create_client(srv_type, f"/cathtrack/{name}")
        try:
            assert client.wait_for_service(timeout_sec=TIMEOUT_S), f"no service {name}"
            future = client.call_async(request)
            deadline = time.monotonic() + TIMEOUT_S
            while not future.done():
                assert time.monotonic() < deadline, f"{name} did not answer"
                time.sleep(0.01)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, **values) -> list:
        """SetParametersResult per parameter, in order."""
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        return list(self.call(SetParameters, "set_parameters", request).results)

    def change_state(self, transition: str) -> bool:
        request = ChangeState.Request()
        request.transition.label = transition
        return self.call(ChangeState, "change_state", request).success

    def state(self) -> str:
        return self.call(GetState, "get_state", GetState.Request()).current_state.label

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join()
        self.node.destroy_node()


@contextlib.contextmanager
def node_and_client(log_path: Path, *ros_args: str) -> Iterator[tuple[NodeProcess, Client]]:
    """A node process and this process's client, in a private ROS domain; the node's log is
    printed when they close (pytest shows it for failing tests)."""
    with ros_domain():
        node = NodeProcess(log_path, *ros_args)
        context = rclpy.Context()
        rclpy.init(context=context)
        client = Client(context)
        try:
            yield node, client
        finally:
            node.kill()
            client.close()
            rclpy.shutdown(context=context)
            print(f"--- node log ---\n{node.log()}")


def xy(poses: PoseArray) -> np.ndarray:
    return np.array([[p.position.x, p.position.y] for p in poses.poses]).reshape(-1, 2)


def points(marker: Marker) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in marker.points]).reshape(-1, 3)


def check_catheters(
    catheters: CatheterArray, msg: Image, expected: cathtrack.Result, spacing_m: float = 0.0
) -> None:
    """The node's typed message for ``msg`` against the Tracker's result: pixels always, metres
    (and nothing in the _m fields without) when ``spacing_m`` > 0."""
    assert catheters.header == msg.header
    assert (catheters.height, catheters.width) == expected.mask.shape
    assert catheters.pixel_spacing_m == spacing_m
    assert len(catheters.catheters) == len(expected.catheters)
    for got, catheter in zip(catheters.catheters, expected.catheters, strict=True):
        assert (got.track_id, got.type) == (catheter.track_id, catheter.type)
        assert math.isclose(got.type_score, catheter.type_score, rel_tol=1e-6, abs_tol=1e-7)
        (x, y), (dx, dy) = catheter.tip, catheter.tip_direction
        np.testing.assert_allclose(
            [got.tip_px.position.x, got.tip_px.position.y], (x, y), atol=1e-4
        )
        assert got.tip_px.position.z == 0.0
        np.testing.assert_allclose([got.tip_direction.x, got.tip_direction.y], (dx, dy), atol=1e-6)
        yaw = 2 * math.atan2(got.tip_px.orientation.z, got.tip_px.orientation.w)
        if (dx, dy) != (0, 0):
            np.testing.assert_allclose([math.cos(yaw), math.sin(yaw)], (dx, dy), atol=1e-6)
        index = np.asarray(catheter.electrodes, np.int64)
        centerline_px = np.reshape(got.centerline_px, (-1, 2))
        electrodes_px = np.reshape(got.electrodes_px, (-1, 2))
        np.testing.assert_allclose(centerline_px, catheter.centerline, atol=1e-4)
        np.testing.assert_allclose(electrodes_px, expected.electrodes[index], atol=1e-4)
        np.testing.assert_allclose(got.electrode_scores, expected.scores[index], rtol=1e-6)
        assert list(got.electrode_index_from_tip) == list(range(len(index)))
        track_ids = expected.electrode_track_ids
        assert list(got.electrode_track_ids) == (
            [int(i) for i in track_ids[index]] if track_ids is not None else [-1] * len(index)
        )
        if spacing_m > 0:
            assert got.tip_m.orientation == got.tip_px.orientation
            position = got.tip_m.position
            np.testing.assert_allclose([position.x, position.y], np.multiply((x, y), spacing_m))
            np.testing.assert_allclose(
                np.reshape(got.centerline_m, (-1, 2)), centerline_px * spacing_m
            )
            np.testing.assert_allclose(
                np.reshape(got.electrodes_m, (-1, 2)), electrodes_px * spacing_m
            )
        else:
            assert got.tip_m.position == Point() and not got.centerline_m and not got.electrodes_m
    stages = (catheters.preprocess_ms, catheters.inference_ms, catheters.postprocess_ms)
    assert min(stages) >= 0.0 and catheters.tracking_ms >= 0.0
    assert math.isclose(sum(stages) + catheters.tracking_ms, catheters.total_ms, abs_tol=0.01)
    assert 0.0 < catheters.total_ms < catheters.latency_ms < 1e3 * TIMEOUT_S


def check_outputs(outputs: dict, msg: Image, expected: cathtrack.Result, scale: float = 1.0):
    """The node's typed catheters, tips, electrodes and markers for ``msg`` against the
    Tracker's result (``scale``: 1 for pixels, else metres per pixel)."""
    check_catheters(outputs["catheters"], msg, expected, scale if scale != 1.0 else 0.0)
    tips, electrodes, markers = (outputs[name] for name in RESULT_TOPICS[1:])
    assert tips.header == electrodes.header == msg.header
    np.testing.assert_allclose(xy(electrodes), expected.electrodes * scale, atol=1e-4 * scale)
    np.testing.assert_allclose(
        xy(tips),
        np.reshape([c.tip for c in expected.catheters], (-1, 2)) * scale,
        atol=1e-4 * scale,
    )
    for pose, catheter in zip(tips.poses, expected.catheters, strict=True):
        yaw = 2 * math.atan2(pose.orientation.z, pose.orientation.w)
        dx, dy = catheter.tip_direction
        assert math.isclose(math.cos(yaw), dx, abs_tol=1e-6) or (dx, dy) == (0, 0)
        assert math.isclose(math.sin(yaw), dy, abs_tol=1e-6) or (dx, dy) == (0, 0)

    first, *rest = markers.markers
    assert first.action == Marker.DELETEALL and first.header == msg.header
    assert len(rest) == 2 * len(expected.catheters)
    for index, catheter in enumerate(expected.catheters):
        line, spheres = rest[2 * index : 2 * index + 2]
        marker_id = catheter.track_id if catheter.track_id >= 0 else -1 - index
        assert (line.type, line.action, line.ns, line.id) == (
            Marker.LINE_STRIP, Marker.ADD, catheter.type, marker_id,
        )  # fmt: skip
        assert (spheres.type, spheres.ns, spheres.id) == (
            Marker.SPHERE_LIST, f"{catheter.type}/electrodes", marker_id,
        )  # fmt: skip
        assert line.header == spheres.header == msg.header
        np.testing.assert_allclose(
            points(line)[:, :2], catheter.centerline * scale, atol=1e-4 * scale
        )
        np.testing.assert_allclose(
            points(spheres)[:, :2],
            expected.electrodes[catheter.electrodes] * scale,
            atol=1e-4 * scale,
        )
        assert not points(line)[:, 2].any() and not points(spheres)[:, 2].any()
        assert math.isclose(line.scale.x, 2.0 * scale)
        assert math.isclose(spheres.scale.x, 5.0 * scale)
        assert line.color == spheres.color and line.color.a == 1.0


def synthetic_frames(seed: int = 3, count: int = 4) -> list[np.ndarray]:
    return [s.image for s in render_sequence(preset("clinical"), seed=seed, n_frames=count)]


def encoded_frames() -> list[tuple[np.ndarray, Image]]:
    """(array the node must see, message) in four encodings."""
    images = synthetic_frames()
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
    return list(zip([mono8, mono16, images[2], bgr], messages, strict=True))
