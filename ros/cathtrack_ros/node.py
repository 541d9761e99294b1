"""The ``cathtrack`` ROS 2 node (DESIGN.md 4.5; topics, units and QoS in docs/ros.md).

The executor thread only converts images and fills a one-slot mailbox; a worker thread runs the
tracker on the newest frame. A frame that arrives while one is pending replaces it (a drop), so
the output always follows the newest image however slow the model is.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

import cathtrack
from cathtrack_ros.convert import array_to_image, image_to_array

__all__ = ["CathtrackNode", "main", "pose_array", "catheter_markers"]

# Sensor-data QoS with depth 1: only the newest image matters.
IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT
)
RESULT_QOS = 10
LOG_THROTTLE_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0
LINE_WIDTH_PX = 2.0
ELECTRODE_DIAMETER_PX = 5.0
# Marker colours by catheter type (RGBA); unknown and unlisted types are grey.
TYPE_COLOURS = {
    "cs_decapolar": (0.2, 0.6, 1.0),
    "quadripolar": (0.2, 0.9, 0.4),
    "ablation": (1.0, 0.3, 0.2),
    "circular_mapping": (0.7, 0.3, 1.0),
    "pacing_lead": (1.0, 0.8, 0.1),
}
UNKNOWN_COLOUR = (0.7, 0.7, 0.7)


@dataclass
class _Frame:
    header: Header
    image: np.ndarray
    received: float  # time.monotonic() at arrival


@dataclass
class _Counters:
    received: int = 0
    processed: int = 0
    dropped: int = 0
    malformed: int = 0
    failed: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0


def _yaw_quaternion(dx: float, dy: float) -> Quaternion:
    """Rotation about z by atan2(dy, dx) (identity for a (0, 0) direction)."""
    yaw = math.atan2(dy, dx)
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def pose_array(
    header: Header, points: np.ndarray, directions: np.ndarray | None, scale: float
) -> PoseArray:
    """PoseArray of (N, 2) pixel ``points`` times ``scale`` (1 or metres per pixel), z = 0;
    orientation the yaw of (N, 2) ``directions`` (identity when None)."""
    poses = []
    for i, (x, y) in enumerate(np.asarray(points, np.float64).reshape(-1, 2)):
        pose = Pose(position=Point(x=float(x) * scale, y=float(y) * scale, z=0.0))
        if directions is not None:
            pose.orientation = _yaw_quaternion(float(directions[i][0]), float(directions[i][1]))
        poses.append(pose)
    return PoseArray(header=header, poses=poses)


def catheter_markers(header: Header, result: cathtrack.Result, scale: float) -> MarkerArray:
    """A DELETEALL, then per catheter a LINE_STRIP centerline (namespace = type) and a SPHERE_LIST
    of its electrodes (namespace = type + "/electrodes"), both with id = track id, or -1 - index
    for a catheter without a confirmed track."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for index, catheter in enumerate(result.catheters):
        marker_id = catheter.track_id if catheter.track_id >= 0 else -1 - index
        r, g, b = TYPE_COLOURS.get(catheter.type, UNKNOWN_COLOUR)
        colour = ColorRGBA(r=r, g=g, b=b, a=1.0)
        line = Marker(header=header, ns=catheter.type, id=marker_id, type=Marker.LINE_STRIP)
        line.action = Marker.ADD
        line.pose.orientation.w = 1.0
        line.scale.x = LINE_WIDTH_PX * scale
        line.color = colour
        line.points = [
            Point(x=float(x) * scale, y=float(y) * scale, z=0.0) for x, y in catheter.centerline
        ]
        spheres = Marker(
            header=header, ns=f"{catheter.type}/electrodes", id=marker_id, type=Marker.SPHERE_LIST
        )
        spheres.action = Marker.ADD
        spheres.pose.orientation.w = 1.0
        spheres.scale.x = spheres.scale.y = spheres.scale.z = ELECTRODE_DIAMETER_PX * scale
        spheres.color = colour
        spheres.points = [
            Point(x=float(x) * scale, y=float(y) * scale, z=0.0)
            for x, y in result.electrodes[catheter.electrodes]
        ]
        markers += [line, spheres]
    return MarkerArray(markers=markers)


class CathtrackNode(Node):
    """Tracks catheters in ``image`` and publishes poses, markers, the mask and diagnostics."""

    def __init__(self) -> None:
        super().__init__("cathtrack")
        self._declare_parameters()
        self._tracker = self._make_tracker(self.get_parameter("score_threshold").value)
        self._lock = threading.Condition()
        self._pending: _Frame | None = None
        self._new_threshold: float | None = None
        self._stopping = False
        self._counters = _Counters()
        self._reported = _Counters()
        self._reported_at = time.monotonic()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._electrodes_pub = self.create_publisher(PoseArray, "~/electrodes", RESULT_QOS)
        self._tips_pub = self.create_publisher(PoseArray, "~/catheter_tips", RESULT_QOS)
        self._markers_pub = self.create_publisher(MarkerArray, "~/catheters", RESULT_QOS)
        self._mask_pub = self.create_publisher(Image, "~/mask", 1)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RESULT_QOS)
        self._worker = threading.Thread(target=self._work, name="cathtrack-worker", daemon=True)
        self._worker.start()
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        # Subscribe last: a publisher that sees this subscription knows the model is loaded.
        self.create_subscription(Image, "image", self._on_image, IMAGE_QOS)
        self.get_logger().info(f"ready: {self._tracker!r}")

    def _declare_parameters(self) -> None:
        def described(text: str, read_only: bool = False, **ranges) -> ParameterDescriptor:
            return ParameterDescriptor(description=text, read_only=read_only, **ranges)

        self.declare_parameter(
            "model",
            "",
            described(
                "weights: .safetensors checkpoint or exported .pt2/.ts; empty = shipped default",
                read_only=True,
            ),
        )
        self.declare_parameter(
            "backend", "native", described("'native' (C++ engine) or 'python'", read_only=True)
        )
        self.declare_parameter(
            "device", "auto", described("'auto', 'cpu' or 'cuda'", read_only=True)
        )
        self.declare_parameter(
            "score_threshold",
            0.3,
            described(
                "minimum electrode heatmap score (changeable at run time)",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0)],
            ),
        )
        self.declare_parameter(
            "pixel_spacing_mm",
            0.0,
            described(
                "detector pixel size in mm; > 0 publishes metres in the detector plane, "
                "0 publishes pixels",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=10.0)],
            ),
        )
        self.declare_parameter(
            "publish_mask", True, described("publish ~/mask when it has a subscriber")
        )
        self.declare_parameter(
            "temporal",
            True,
            described("track over frames: stable track ids, smoothed electrodes", read_only=True),
        )

    def _make_tracker(self, score_threshold: float) -> cathtrack.Tracker:
        model = self.get_parameter("model").value
        return cathtrack.Tracker(
            model=model or None,
            device=self.get_parameter("device").value,
            backend=self.get_parameter("backend").value,
            score_threshold=score_threshold,
            temporal=self.get_parameter("temporal").value,
        )

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == "score_threshold":
                with self._lock:
                    self._new_threshold = float(parameter.value)
        return SetParametersResult(successful=True)

    def _on_image(self, msg: Image) -> None:
        now = time.monotonic()
        try:
            image = image_to_array(msg)
        except ValueError as error:
            with self._lock:
                self._counters.malformed += 1
            self.get_logger().warning(
                f"malformed image ignored: {error}", throttle_duration_sec=LOG_THROTTLE_S
            )
            return
        with self._lock:
            self._counters.received += 1
            if self._pending is not None:
                self._counters.dropped += 1
            self._pending = _Frame(msg.header, image, now)
            self._lock.notify()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                frame, self._pending = self._pending, None
                threshold, self._new_threshold = self._new_threshold, None
            if threshold is not None:
                self._retune(threshold)
            try:
                result = self._tracker(frame.image)
            except (TypeError, ValueError, RuntimeError) as error:
                with self._lock:
                    self._counters.failed += 1
                self.get_logger().error(
                    f"tracker refused a frame: {error}", throttle_duration_sec=LOG_THROTTLE_S
                )
                continue
            self._publish(frame.header, result)
            latency_ms = 1e3 * (time.monotonic() - frame.received)
            with self._lock:
                self._counters.processed += 1
                self._counters.latency_ms_sum += latency_ms
                self._counters.latency_ms_max = max(self._counters.latency_ms_max, latency_ms)

    def _retune(self, score_threshold: float) -> None:
        """A tracker with the new threshold that keeps the tracks of the old one (the native
        engine takes its settings at construction)."""
        tracker = self._make_tracker(score_threshold)
        tracker.sequence = self._tracker.sequence
        self._tracker = tracker
        self.get_logger().info(f"score_threshold = {score_threshold}")

    def _publish(self, header: Header, result: cathtrack.Result) -> None:
        spacing_mm = self.get_parameter("pixel_spacing_mm").value
        scale = spacing_mm * 1e-3 if spacing_mm > 0 else 1.0
        tips = np.array([c.tip for c in result.catheters], np.float64).reshape(-1, 2)
        directions = np.array([c.tip_direction for c in result.catheters]).reshape(-1, 2)
        self._electrodes_pub.publish(pose_array(header, result.electrodes, None, scale))
        self._tips_pub.publish(pose_array(header, tips, directions, scale))
        self._markers_pub.publish(catheter_markers(header, result, scale))
        if self.get_parameter("publish_mask").value and self._mask_pub.get_subscription_count() > 0:
            self._mask_pub.publish(array_to_image(result.mask, header))

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            counters = _Counters(**vars(self._counters))
            self._counters.latency_ms_sum = 0.0
            self._counters.latency_ms_max = 0.0
        window = self._reported
        elapsed = max(now - self._reported_at, 1e-9)
        processed = counters.processed - window.processed
        malformed = counters.malformed - window.malformed
        failed = counters.failed - window.failed
        self._reported, self._reported_at = counters, now
        level = DiagnosticStatus.OK
        message = "ok" if processed else "no frames"
        if malformed or failed:
            level, message = DiagnosticStatus.WARN, f"{malformed} malformed, {failed} failed"
        values = {
            "rate_hz": f"{processed / elapsed:.2f}",
            "latency_mean_ms": f"{counters.latency_ms_sum / processed:.1f}" if processed else "",
            "latency_max_ms": f"{counters.latency_ms_max:.1f}" if processed else "",
            "frames_received": str(counters.received),
            "frames_processed": str(counters.processed),
            "frames_dropped": str(counters.dropped),
            "messages_malformed": str(counters.malformed),
            "frames_failed": str(counters.failed),
        }
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: tracker",
            message=message,
            hardware_id=str(self._tracker.model_path),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        diagnostics = DiagnosticArray(status=[status])
        diagnostics.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(diagnostics)

    def stop(self) -> None:
        """Stops the worker thread and waits for it (call before destroy_node)."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        self._worker.join()


def main(args: list[str] | None = None) -> None:
    """``cathtrack-ros [--ros-args ...]``: runs the node until SIGINT / SIGTERM."""
    rclpy.init(args=args)
    node = CathtrackNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
