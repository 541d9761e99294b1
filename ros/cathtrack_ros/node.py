"""The ``cathtrack`` ROS 2 node (docs/design.md 4.5; topics, units, QoS and lifecycle in docs/ros.md).

It publishes the catheters it finds as typed messages (``~/catheters``,
cathtrack_msgs/CatheterArray) and, for tools that read only standard messages, as poses
(``~/catheter_tips``, ``~/electrodes``) and markers (``~/markers``).

A managed (lifecycle) node: ``configure`` loads the model, ``activate`` starts tracking,
``deactivate`` stops it (frames are then ignored and counted), ``cleanup`` releases the model,
``shutdown`` ends the process. With the parameter ``autostart`` (the default) the node configures
and activates itself, so ``cathtrack-ros`` alone starts tracking.

A frame is tracked and published in the callback that received it, on the executor's thread;
frames arriving meanwhile replace each other in the subscription's depth-1 history, so the output
always follows the newest image however slow the model.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from cathtrack_msgs.msg import CatheterArray
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseArray
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
from visualization_msgs.msg import MarkerArray

import cathtrack
from cathtrack.settings import DecodeSettings
from cathtrack_ros import ROS_DISTRIBUTION
from cathtrack_ros.convert import MalformedImage, array_to_image, check_image, image_to_array
from cathtrack_ros.messages import CatheterArrayBuilder, catheter_markers, pose_array

__all__ = ["CathtrackNode", "main"]

# Sensor-data QoS with depth 1: only the newest image matters.
IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT
)
RESULT_QOS = 10
LOG_THROTTLE_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0
# Parameters the model is built from: changeable only while no model is loaded (unconfigured).
MODEL_PARAMETERS = ("model", "backend", "device", "threads", "temporal")
CHOICES = {"backend": ("native", "python"), "device": ("auto", "cpu", "cuda")}
MAX_PUBLISHERS_REMEMBERED = 64  # of ``image``, for the sequence numbers of missed messages


@dataclass
class _Frame:
    msg: Image  # checked
    received: float  # time.monotonic() at arrival
    # system clock (the ROS clock's) in ns: when DDS received the message, when the callback ran
    transport_ns: int
    callback_ns: int


@dataclass
class _Counters:
    """Cumulative counts; every message taken from ``image`` ends in exactly one of malformed,
    ignored, processed or failed."""

    received: int = 0
    malformed: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(MalformedImage.KINDS, 0)
    )
    missed: int = 0
    ignored: int = 0
    processed: int = 0
    failed: int = 0
    masks: int = 0
    overlays: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0

    def copy(self) -> _Counters:
        return _Counters(**{**vars(self), "malformed": dict(self.malformed)})


class CathtrackNode(LifecycleNode):
    """Tracks catheters in ``image`` and publishes typed catheters, poses, markers, mask, overlay
    and diagnostics.

    Created unconfigured; :meth:`autostart` (or the standard lifecycle services
    ``~/change_state``) configures and activates it.

    Every callback (image, services, timer) runs on the executor's thread, one at a time: a frame
    is tracked and published in the callback that received it. Messages that arrive meanwhile wait
    in the depth-1 history of the ``image`` subscription, where each new one replaces the last, so
    the next frame tracked is always the newest however slow the model (the ones replaced are
    counted as missed). No thread hand-over: that cost up to 0.8 ms per frame at p99.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("cathtrack", **kwargs)
        self._declare_parameters()
        self._tracker: cathtrack.Tracker | None = None
        self._active = False
        self._new_threshold: float | None = None
        self._state = "unconfigured"
        self._counters = _Counters()
        self._reported = _Counters()
        self._reported_at = time.monotonic()
        self._last_sequence: dict[bytes, int] = {}  # per publisher of ``image``
        self._subscription = None
        self._outputs: dict[str, object] = {}
        self._catheter_array = CatheterArrayBuilder()
        self.finished = Future()  # done after the shutdown transition
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Diagnostics are published in every state, so a monitor sees an unconfigured node too.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RESULT_QOS)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)

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
                "detector pixel size in mm; > 0: poses and markers in metres in the detector "
                "plane, ~/catheters in pixels and metres; 0: pixels (changeable at run time)",
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
        self._tracker, self._new_threshold = tracker, None
        self._outputs = {
            "catheters": self.create_lifecycle_publisher(CatheterArray, "~/catheters", RESULT_QOS),
            "catheter_tips": self.create_lifecycle_publisher(
                PoseArray, "~/catheter_tips", RESULT_QOS
            ),
            "electrodes": self.create_lifecycle_publisher(PoseArray, "~/electrodes", RESULT_QOS),
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/markers", RESULT_QOS),
            "mask": self.create_lifecycle_publisher(Image, "~/mask", 1),
            "overlay": self.create_lifecycle_publisher(Image, "~/overlay", 1),
        }
        self._subscription = self.create_subscription(Image, "image", self._on_image, IMAGE_QOS)
        self._state = "inactive"
        # Leaves the objects alive now (model, torch, ROS: ~200 000) out of every later garbage
        # collection: a full one over them took 100-300 ms, a stall of whichever frame it hit.
        gc.collect()
        gc.freeze()
        self.get_logger().info(f"configured: {tracker!r}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the publishers first
        self._active = True
        self._state = "active"
        self.get_logger().info("active: tracking frames of 'image'")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._state = "inactive"
        self.get_logger().info("inactive: frames of 'image' are ignored")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "unconfigured"
        self.get_logger().info("cleaned up: model released")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release()
        self._state = "finalized"
        self.finished.set_result(True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        self._tracker = None  # the last reference: the model's memory is freed
        gc.unfreeze()  # what on_configure froze can be collected again
        gc.collect()
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
                self._new_threshold = float(parameter.value)
        return SetParametersResult(successful=True)

    # --- frames ----------------------------------------------------------------------------------

    def _on_image(self, msg: Image, info: dict) -> None:
        now, now_ns = time.monotonic(), time.time_ns()
        self._counters.received += 1
        self._counters.missed += self._count_missed(info)
        try:
            check_image(msg)
        except MalformedImage as error:
            self._counters.malformed[error.kind] += 1
            self.get_logger().warning(
                f"malformed image ignored: {error}", throttle_duration_sec=LOG_THROTTLE_S
            )
            return
        if not self._active:
            self._counters.ignored += 1
            return
        self._track(_Frame(msg, now, info.get("received_timestamp") or now_ns, now_ns))

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

    def _track(self, frame: _Frame) -> None:
        try:
            if self._new_threshold is not None:
                threshold, self._new_threshold = self._new_threshold, None
                self._retune(threshold)
            image = image_to_array(frame.msg)
            converted_ns = time.time_ns()
            result = self._tracker(image)
            tracked_ns = time.time_ns()
            catheters_ns, tips_ns = self._publish(frame, image, result)
        except Exception as error:  # whatever one frame does, the node keeps running
            self._counters.failed += 1
            self.get_logger().error(
                f"frame not tracked: {type(error).__name__}: {error}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return
        latency_ms = 1e3 * (time.monotonic() - frame.received)
        self._counters.processed += 1
        self._counters.latency_ms_sum += latency_ms
        self._counters.latency_ms_max = max(self._counters.latency_ms_max, latency_ms)
        if self.get_logger().is_enabled_for(LoggingSeverity.DEBUG):
            stamp_ns = Time.from_msg(frame.msg.header.stamp).nanoseconds
            self.get_logger().debug(
                f"frame {stamp_ns} ns, after its stamp in ms: "
                f"transport {(frame.transport_ns - stamp_ns) / 1e6:.3f} "
                f"callback {(frame.callback_ns - stamp_ns) / 1e6:.3f} "
                f"converted {(converted_ns - stamp_ns) / 1e6:.3f} "
                f"tracked {(tracked_ns - stamp_ns) / 1e6:.3f} "
                f"catheters {(catheters_ns - stamp_ns) / 1e6:.3f} "
                f"tips {(tips_ns - stamp_ns) / 1e6:.3f}"
            )

    def _retune(self, score_threshold: float) -> None:
        """The new threshold from the next frame on; the model and the tracks stay."""
        self._tracker.configure(score_threshold=score_threshold)
        self.get_logger().info(f"score_threshold = {score_threshold}")

    def _publish(
        self, frame: _Frame, image: np.ndarray, result: cathtrack.Result
    ) -> tuple[int, int]:
        """Publishes everything, the typed catheters first, then the tips: they are what a
        controller waits for. Returns when each of the two was sent (time.time_ns())."""
        header = frame.msg.header
        spacing_mm = self.get_parameter("pixel_spacing_mm").value
        spacing_m = spacing_mm * 1e-3 if spacing_mm > 0 else 0.0
        scale = spacing_m or 1.0
        outputs = self._outputs
        size = (image.shape[1], image.shape[0])
        catheters = self._catheter_array(header, result, size, spacing_m)
        catheters.latency_ms = (time.time_ns() - frame.transport_ns) / 1e6
        outputs["catheters"].publish(catheters)
        catheters_ns = time.time_ns()
        tips = [c.tip for c in result.catheters]
        directions = [c.tip_direction for c in result.catheters]
        outputs["catheter_tips"].publish(pose_array(header, tips, directions, scale))
        tips_ns = time.time_ns()
        outputs["electrodes"].publish(pose_array(header, result.electrodes, None, scale))
        # A marker holds a Python object per point (~1.3 ms for the ~600 of a frame): only for a
        # viewer that listens.
        if outputs["markers"].get_subscription_count() > 0:
            outputs["markers"].publish(catheter_markers(header, result, scale))
        if self._wanted("mask"):
            outputs["mask"].publish(array_to_image(result.mask, header))
            self._counters.masks += 1
        if self._wanted("overlay"):
            outputs["overlay"].publish(array_to_image(cathtrack.draw(image, result), header))
            self._counters.overlays += 1
        return catheters_ns, tips_ns

    def _wanted(self, output: str) -> bool:
        return (
            self.get_parameter(f"publish_{output}").value
            and self._outputs[output].get_subscription_count() > 0
        )

    # --- diagnostics -----------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cathtrack-ros",
        usage="%(prog)s [-h] [--version] [--ros-args ARGUMENTS ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""The cathtrack ROS 2 node: tracks catheters in the images of 'image' and
publishes ~/catheters (cathtrack_msgs/CatheterArray), ~/catheter_tips and ~/electrodes
(geometry_msgs/PoseArray), ~/markers, ~/mask, ~/overlay and /diagnostics, until SIGINT/SIGTERM
or the lifecycle shutdown transition. Everything after --ros-args goes to ROS: parameters
(-p NAME:=VALUE, --params-file FILE; every parameter with its default is in the file
`python -c "import cathtrack_ros; print(cathtrack_ros.PARAMETERS_FILE)"`), remapping, log
level. Topics, parameters and messages: docs/ros.md.""",
        epilog="""examples:
  cathtrack-ros --ros-args -p device:=cpu -p pixel_spacing_mm:=0.3
  cathtrack-ros --ros-args --params-file my_params.yaml -r image:=/camera/image
  cathtrack-ros --ros-args -p autostart:=false   # then drive ~/change_state
  cathtrack-ros --ros-args --log-level cathtrack:=debug   # per-frame timings""",
    )
    parser.add_argument("--version", action="version", version=version_text("cathtrack-ros"))
    return parser


def version_text(program: str) -> str:
    """``PROGRAM VERSION (ROS 2 DISTRIBUTION, rclpy VERSION)``."""
    from importlib.metadata import version

    return (
        f"{program} {cathtrack.__version__} "
        f"(ROS 2 {ROS_DISTRIBUTION}, rclpy {version('ros-rclpy')})"
    )


def main(argv: list[str] | None = None) -> int:
    """``cathtrack-ros [--ros-args ...]``: runs the node until SIGINT / SIGTERM
    or the lifecycle shutdown transition; exit status 1 when ``autostart`` could not configure
    and activate it. ``--help`` and ``--version`` answer without starting ROS."""
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    _parser().parse_args(argv[:split])
    rclpy.init(args=["cathtrack-ros", *argv[split:]])
    node = CathtrackNode()
    # rclpy's EventsExecutor (9.1) would save its Python wait loop, but runs no callback here:
    # its spin() busy-waits in C++ (docs/ros.md, "Measured latency").
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
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
