"""The ``cathtrack`` ROS 2 node (docs/design.md 4.5; topics, units, QoS and lifecycle in docs/ros.md).

A managed (lifecycle) node: ``configure`` loads the model, ``activate`` starts tracking,
``deactivate`` stops it (frames are then ignored and counted), ``cleanup`` releases the model,
``shutdown`` ends the process. With the parameter ``autostart`` (the default) the node configures
and activates itself, so ``cathtrack-ros`` alone starts tracking.

The executor thread only converts images and fills a one-slot mailbox; a worker thread runs the
tracker on the newest frame and publishes. A frame that arrives while one is pending replaces it
(a drop), so the output always follows the newest image however slow the model is.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.logging import LoggingSeverity
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

import cathtrack
from cathtrack.catheters import type_colour
from cathtrack.settings import DecodeSettings
from cathtrack_ros.convert import MalformedImage, array_to_image, check_image, image_to_array

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
# The executor and worker threads hand the GIL over at least once per frame; with Python's default
# 5 ms switch interval a thread could wait up to 5 ms for it (measured as 5 ms latency tails).
GIL_SWITCH_INTERVAL_S = 0.0005
# Parameters the model is built from: changeable only while no model is loaded (unconfigured).
MODEL_PARAMETERS = ("model", "backend", "device", "threads", "temporal")
CHOICES = {"backend": ("native", "python"), "device": ("auto", "cpu", "cuda")}
MAX_PUBLISHERS_REMEMBERED = 64  # of ``image``, for the sequence numbers of missed messages


@dataclass
class _Frame:
    msg: Image  # checked; converted by the worker, so dropped frames cost no copy
    received: float  # time.monotonic() at arrival
    # system clock (the ROS clock's) in ns: when DDS received the message, when the callback ran
    transport_ns: int
    callback_ns: int


@dataclass
class _Counters:
    """Cumulative counts; every message taken from ``image`` ends in exactly one of malformed,
    ignored, dropped, processed or failed (or is the one frame in flight)."""

    received: int = 0
    malformed: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(MalformedImage.KINDS, 0)
    )
    missed: int = 0
    ignored: int = 0
    dropped: int = 0
    processed: int = 0
    failed: int = 0
    masks: int = 0
    overlays: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0

    def copy(self) -> _Counters:
        return _Counters(**{**vars(self), "malformed": dict(self.malformed)})


def _yaw_quaternion(dx: float, dy: float) -> Quaternion:
    """Rotation about z by atan2(dy, dx) (identity for a (0, 0) direction)."""
    yaw = math.atan2(dy, dx)
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def _points(xy: np.ndarray, scale: float) -> list[Point]:
    """Points (x, y, 0) of (N, 2) pixel coordinates times ``scale``."""
    return [Point(x=x, y=y, z=0.0) for x, y in (np.asarray(xy, np.float64) * scale).tolist()]


def pose_array(
    header: Header, points: np.ndarray, directions: np.ndarray | None, scale: float
) -> PoseArray:
    """PoseArray of (N, 2) pixel ``points`` times ``scale`` (1 or metres per pixel), z = 0;
    orientation the yaw of (N, 2) ``directions`` (identity when None)."""
    positions = _points(np.reshape(points, (-1, 2)), scale)
    if directions is None:
        return PoseArray(header=header, poses=[Pose(position=p) for p in positions])
    yaws = np.reshape(directions, (-1, 2)).tolist()
    return PoseArray(
        header=header,
        poses=[
            Pose(position=p, orientation=_yaw_quaternion(dx, dy))
            for p, (dx, dy) in zip(positions, yaws, strict=True)
        ],
    )


def catheter_markers(header: Header, result: cathtrack.Result, scale: float) -> MarkerArray:
    """A DELETEALL, then per catheter a LINE_STRIP centerline (namespace = type) and a SPHERE_LIST
    of its electrodes (namespace = type + "/electrodes"), both with id = track id, or -1 - index
    for a catheter without a confirmed track."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for index, catheter in enumerate(result.catheters):
        marker_id = catheter.track_id if catheter.track_id >= 0 else -1 - index
        r, g, b = type_colour(catheter.type)  # the catalogue's colour; unknown types grey
        colour = ColorRGBA(r=r, g=g, b=b, a=1.0)
        line = Marker(header=header, ns=catheter.type, id=marker_id, type=Marker.LINE_STRIP)
        line.action = Marker.ADD
        line.pose.orientation.w = 1.0
        line.scale.x = LINE_WIDTH_PX * scale
        line.color = colour
        line.points = _points(catheter.centerline, scale)
        spheres = Marker(
            header=header, ns=f"{catheter.type}/electrodes", id=marker_id, type=Marker.SPHERE_LIST
        )
        spheres.action = Marker.ADD
        spheres.pose.orientation.w = 1.0
        spheres.scale.x = spheres.scale.y = spheres.scale.z = ELECTRODE_DIAMETER_PX * scale
        spheres.color = colour
        spheres.points = _points(result.electrodes[catheter.electrodes], scale)
        markers += [line, spheres]
    return MarkerArray(markers=markers)


class CathtrackNode(LifecycleNode):
    """Tracks catheters in ``image`` and publishes poses, markers, mask, overlay and diagnostics.

    Created unconfigured; :meth:`autostart` (or the standard lifecycle services
    ``~/change_state``) configures and activates it. Call :meth:`stop` before ``destroy_node``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("cathtrack", **kwargs)
        self._declare_parameters()
        self._lock = threading.Condition()
        self._tracker: cathtrack.Tracker | None = None
        self._active = False
        self._busy = False  # the worker is tracking or publishing a frame
        self._pending: _Frame | None = None
        self._new_threshold: float | None = None
        self._stopping = False
        self._state = "unconfigured"
        self._counters = _Counters()
        self._reported = _Counters()
        self._reported_at = time.monotonic()
        self._last_sequence: dict[bytes, int] = {}  # per publisher of ``image``
        self._subscription = None
        self._outputs: dict[str, object] = {}
        self.finished = Future()  # done after the shutdown transition
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Diagnostics are published in every state, so a monitor sees an unconfigured node too.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RESULT_QOS)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="cathtrack-worker", daemon=True)
        self._worker.start()

    def _declare_parameters(self) -> None:
        def described(text: str, read_only: bool = False, **ranges) -> ParameterDescriptor:
            return ParameterDescriptor(description=text, read_only=read_only, **ranges)

        when_unconfigured = " (changeable only while unconfigured: it is read in on_configure)"
        self.declare_parameter(
            "autostart",
            True,
            described("configure and activate at start; false: wait for ~/change_state", True),
        )
        self.declare_parameter(
            "model",
            "",
            described(
                "weights: .safetensors checkpoint or exported .pt2/.ts; empty = shipped default"
                + when_unconfigured
            ),
        )
        self.declare_parameter(
            "backend", "native", described("'native' (C++ engine) or 'python'" + when_unconfigured)
        )
        self.declare_parameter(
            "device", "auto", described("'auto', 'cpu' or 'cuda'" + when_unconfigured)
        )
        self.declare_parameter(
            "threads",
            0,
            described(
                "CPU threads of the model; 0 = torch's default" + when_unconfigured,
                integer_range=[IntegerRange(from_value=0, to_value=256, step=1)],
            ),
        )
        self.declare_parameter(
            "temporal",
            True,
            described(
                "track over frames: stable track ids, smoothed electrodes" + when_unconfigured
            ),
        )
        self.declare_parameter(
            "score_threshold",
            DecodeSettings.score_threshold,
            described(
                "minimum electrode heatmap score (changeable at run time; tracks are kept)",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0)],
            ),
        )
        self.declare_parameter(
            "pixel_spacing_mm",
            0.0,
            described(
                "detector pixel size in mm; > 0 publishes metres in the detector plane, "
                "0 publishes pixels (changeable at run time)",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=10.0)],
            ),
        )
        self.declare_parameter(
            "publish_mask", True, described("publish ~/mask while it has a subscriber")
        )
        self.declare_parameter(
            "publish_overlay", True, described("publish ~/overlay while it has a subscriber")
        )

    # --- lifecycle -------------------------------------------------------------------------------

    def autostart(self) -> bool:
        """Configures and activates the node; False (and logged) when either step fails."""
        return (
            self.trigger_configure() == TransitionCallbackReturn.SUCCESS
            and self.trigger_activate() == TransitionCallbackReturn.SUCCESS
        )

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Loads the model and creates the publishers and the ``image`` subscription."""
        try:
            tracker = self._make_tracker(self.get_parameter("score_threshold").value)
        except Exception as error:  # whatever stops the model from loading fails the transition
            self.get_logger().error(f"configure failed, the model did not load: {error}")
            return TransitionCallbackReturn.FAILURE
        with self._lock:
            self._tracker, self._new_threshold = tracker, None
        self._outputs = {
            "catheter_tips": self.create_lifecycle_publisher(
                PoseArray, "~/catheter_tips", RESULT_QOS
            ),
            "electrodes": self.create_lifecycle_publisher(PoseArray, "~/electrodes", RESULT_QOS),
            "catheters": self.create_lifecycle_publisher(MarkerArray, "~/catheters", RESULT_QOS),
            "mask": self.create_lifecycle_publisher(Image, "~/mask", 1),
            "overlay": self.create_lifecycle_publisher(Image, "~/overlay", 1),
        }
        self._subscription = self.create_subscription(Image, "image", self._on_image, IMAGE_QOS)
        self._state = "inactive"
        self.get_logger().info(f"configured: {tracker!r}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the publishers first
        with self._lock:
            self._active = True
        self._state = "active"
        self.get_logger().info("active: tracking frames of 'image'")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pause()
        self._state = "inactive"
        self.get_logger().info("inactive: frames of 'image' are ignored")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "unconfigured"
        self.get_logger().info("cleaned up: model released")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pause()
        self._release()
        self._state = "finalized"
        self.finished.set_result(True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pause()
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _pause(self) -> None:
        """Stops taking frames and waits until the worker has finished the one it tracks."""
        with self._lock:
            self._active = False
            if self._pending is not None:
                self._counters.ignored += 1
                self._pending = None
            self._lock.wait_for(lambda: not self._busy)

    def _release(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        with self._lock:
            self._tracker = None  # the last reference: the model's memory is freed
        self._last_sequence.clear()

    # --- parameters ------------------------------------------------------------------------------

    def _make_tracker(self, score_threshold: float) -> cathtrack.Tracker:
        model = self.get_parameter("model").value
        return cathtrack.Tracker(
            model=model or None,
            device=self.get_parameter("device").value,
            backend=self.get_parameter("backend").value,
            score_threshold=score_threshold,
            threads=self.get_parameter("threads").value,
            temporal=self.get_parameter("temporal").value,
        )

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name in MODEL_PARAMETERS and self._tracker is not None:
                return SetParametersResult(
                    successful=False,
                    reason=f"'{parameter.name}' can only change while the node is unconfigured "
                    f"(the model is loaded; now {self._state}): deactivate and clean up first",
                )
            choices = CHOICES.get(parameter.name)
            if choices is not None and parameter.value not in choices:
                return SetParametersResult(
                    successful=False,
                    reason=f"'{parameter.name}' must be one of {', '.join(choices)}",
                )
        for parameter in parameters:
            if parameter.name == "score_threshold":
                with self._lock:
                    self._new_threshold = float(parameter.value)
        return SetParametersResult(successful=True)

    # --- frames ----------------------------------------------------------------------------------

    def _on_image(self, msg: Image, info: dict) -> None:
        now, now_ns = time.monotonic(), time.time_ns()
        missed = self._count_missed(info)
        try:
            check_image(msg)
        except MalformedImage as error:
            with self._lock:
                self._counters.received += 1
                self._counters.missed += missed
                self._counters.malformed[error.kind] += 1
            self.get_logger().warning(
                f"malformed image ignored: {error}", throttle_duration_sec=LOG_THROTTLE_S
            )
            return
        with self._lock:
            self._counters.received += 1
            self._counters.missed += missed
            if not self._active:
                self._counters.ignored += 1
                return
            if self._pending is not None:
                self._counters.dropped += 1
            self._pending = _Frame(msg, now, info.get("received_timestamp") or now_ns, now_ns)
            self._lock.notify_all()

    def _count_missed(self, info: dict) -> int:
        """Frames a publisher sent that never reached this callback (replaced in the depth-1
        history while the executor was busy, or lost): gaps in its sequence numbers."""
        sequence = info.get("publication_sequence_number")
        publisher = (info.get("publisher_gid") or {}).get("data")
        if sequence is None or publisher is None:
            return 0
        previous = self._last_sequence.pop(publisher, None)
        self._last_sequence[publisher] = sequence  # most recent last
        if len(self._last_sequence) > MAX_PUBLISHERS_REMEMBERED:
            del self._last_sequence[next(iter(self._last_sequence))]
        return max(0, sequence - previous - 1) if previous is not None else 0

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                frame, self._pending = self._pending, None
                threshold, self._new_threshold = self._new_threshold, None
                self._busy = True
            try:
                self._track(frame, threshold)
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _track(self, frame: _Frame, threshold: float | None) -> None:
        start_ns = time.time_ns()
        try:
            if threshold is not None:
                self._retune(threshold)
            image = image_to_array(frame.msg)
            converted_ns = time.time_ns()
            result = self._tracker(image)
            tracked_ns = time.time_ns()
            tips_ns = self._publish(frame.msg.header, image, result)
        except Exception as error:  # whatever one frame does, the node keeps running
            with self._lock:
                self._counters.failed += 1
            self.get_logger().error(
                f"frame not tracked: {type(error).__name__}: {error}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return
        latency_ms = 1e3 * (time.monotonic() - frame.received)
        with self._lock:
            self._counters.processed += 1
            self._counters.latency_ms_sum += latency_ms
            self._counters.latency_ms_max = max(self._counters.latency_ms_max, latency_ms)
        if self.get_logger().is_enabled_for(LoggingSeverity.DEBUG):
            stamp_ns = Time.from_msg(frame.msg.header.stamp).nanoseconds
            self.get_logger().debug(
                f"frame {stamp_ns} ns, after its stamp in ms: "
                f"transport {(frame.transport_ns - stamp_ns) / 1e6:.3f} "
                f"callback {(frame.callback_ns - stamp_ns) / 1e6:.3f} "
                f"worker {(start_ns - stamp_ns) / 1e6:.3f} "
                f"converted {(converted_ns - stamp_ns) / 1e6:.3f} "
                f"tracked {(tracked_ns - stamp_ns) / 1e6:.3f} "
                f"tips {(tips_ns - stamp_ns) / 1e6:.3f}"
            )

    def _retune(self, score_threshold: float) -> None:
        """The new threshold from the next frame on; the model and the tracks stay."""
        self._tracker.configure(score_threshold=score_threshold)
        self.get_logger().info(f"score_threshold = {score_threshold}")

    def _publish(self, header: Header, image: np.ndarray, result: cathtrack.Result) -> int:
        """Publishes everything, tips first: they are what a controller waits for. Returns when
        the tips were sent (time.time_ns())."""
        spacing_mm = self.get_parameter("pixel_spacing_mm").value
        scale = spacing_mm * 1e-3 if spacing_mm > 0 else 1.0
        outputs = self._outputs
        tips = [c.tip for c in result.catheters]
        directions = [c.tip_direction for c in result.catheters]
        outputs["catheter_tips"].publish(pose_array(header, tips, directions, scale))
        tips_ns = time.time_ns()
        outputs["electrodes"].publish(pose_array(header, result.electrodes, None, scale))
        outputs["catheters"].publish(catheter_markers(header, result, scale))
        if self._wanted("mask"):
            outputs["mask"].publish(array_to_image(result.mask, header))
            with self._lock:
                self._counters.masks += 1
        if self._wanted("overlay"):
            outputs["overlay"].publish(array_to_image(cathtrack.draw(image, result), header))
            with self._lock:
                self._counters.overlays += 1
        return tips_ns

    def _wanted(self, output: str) -> bool:
        return (
            self.get_parameter(f"publish_{output}").value
            and self._outputs[output].get_subscription_count() > 0
        )

    # --- diagnostics -----------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            counters = self._counters.copy()
            self._counters.latency_ms_sum = 0.0
            self._counters.latency_ms_max = 0.0
            tracker = self._tracker
        window = self._reported
        elapsed = max(now - self._reported_at, 1e-9)
        processed = counters.processed - window.processed
        malformed = sum(counters.malformed.values()) - sum(window.malformed.values())
        failed = counters.failed - window.failed
        self._reported, self._reported_at = counters, now
        level = DiagnosticStatus.OK
        message = self._state if self._state != "active" else "ok" if processed else "no frames"
        if malformed or failed:
            level, message = DiagnosticStatus.WARN, f"{malformed} malformed, {failed} failed"
        values = {
            "state": self._state,
            "rate_hz": f"{processed / elapsed:.2f}",
            "latency_mean_ms": f"{counters.latency_ms_sum / processed:.1f}" if processed else "",
            "latency_max_ms": f"{counters.latency_ms_max:.1f}" if processed else "",
            "messages_received": str(counters.received),
            "messages_missed": str(counters.missed),
            "messages_malformed": str(sum(counters.malformed.values())),
            **{f"malformed_{kind}": str(n) for kind, n in counters.malformed.items()},
            "frames_ignored": str(counters.ignored),
            "frames_dropped": str(counters.dropped),
            "frames_processed": str(counters.processed),
            "frames_failed": str(counters.failed),
            "masks_published": str(counters.masks),
            "overlays_published": str(counters.overlays),
        }
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: tracker",
            message=message,
            hardware_id=str(tracker.model_path) if tracker is not None else "",
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        diagnostics = DiagnosticArray(status=[status])
        diagnostics.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(diagnostics)

    def stop(self) -> None:
        """Stops the worker thread and waits for it (call before destroy_node)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._worker.join()


def main(args: list[str] | None = None) -> int:
    """``cathtrack-ros [--ros-args ...]``: runs the node until SIGINT / SIGTERM or the lifecycle
    shutdown transition; exit status 1 when ``autostart`` could not configure and activate it."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    rclpy.init(args=args)
    node = CathtrackNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    status = 0
    try:
        if node.get_parameter("autostart").value and not node.autostart():
            status = 1
        else:
            executor.spin_until_future_complete(node.finished)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
