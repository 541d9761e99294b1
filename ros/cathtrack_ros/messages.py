"""Messages of a :class:`cathtrack.Result`: the typed cathtrack_msgs/CatheterArray and, for tools
that read only standard messages, geometry_msgs/PoseArray and visualization_msgs/MarkerArray
(docs/ros.md). Pure functions of a result: they need the message libraries, not a ROS graph.
"""

from __future__ import annotations

import array
import math

import numpy as np
from cathtrack_msgs.msg import Catheter, CatheterArray
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

import cathtrack
from cathtrack.catheters import type_colour

__all__ = ["CatheterArrayBuilder", "catheter_markers", "pose_array"]

LINE_WIDTH_PX = 2.0
ELECTRODE_DIAMETER_PX = 5.0


def _yaw(dx: float, dy: float) -> tuple[float, float]:
    """(z, w) of the quaternion of a rotation about z by atan2(dy, dx); (0, 1) for (0, 0)."""
    yaw = math.atan2(dy, dx)
    return math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def _numbers(values: np.ndarray, dtype: type, typecode: str) -> array.array:
    """A sequence field of a message (``array.array``) from an array of any shape: one buffer
    copy, where ``array.array(typecode, ndarray)`` would make a Python object per value."""
    return array.array(typecode, np.ascontiguousarray(values, dtype).tobytes())


def _set_pose(pose: Pose, x: float, y: float, rotation: tuple[float, float]) -> None:
    """Sets a pose in place to (x, y, 0), rotated about z by ``rotation`` = (z, w)."""
    pose.position.x, pose.position.y, pose.position.z = x, y, 0.0
    orientation = pose.orientation
    orientation.x, orientation.y, (orientation.z, orientation.w) = 0.0, 0.0, rotation


class CatheterArrayBuilder:
    """Builds the cathtrack_msgs/CatheterArray of results: every catheter with its track id, type,
    tip, centerline and electrodes in pixels, and in metres when the pixel spacing is known; the
    tracker's timings.

    Point lists go in as one buffer copy of a numpy array each, never an object per point. One
    message and its catheters are reused from call to call, set in place: constructing a Catheter
    makes six sub-messages, which took ~40 us per catheter. The message returned is therefore
    valid until the next call (``publish`` has serialised it by then).
    """

    def __init__(self) -> None:
        self._msg = CatheterArray()
        self._catheters: list[Catheter] = []

    def __call__(
        self, header: Header, result: cathtrack.Result, size: tuple[int, int], spacing_m: float
    ) -> CatheterArray:
        """The message of ``result`` on an image of ``size`` = (width, height) pixels;
        ``spacing_m``: metres per pixel, 0 when unknown (the _m fields are then empty and
        ``tip_m`` the default pose). ``latency_ms`` is left 0, for the caller to set just before
        publishing."""
        while len(self._catheters) < len(result.catheters):
            self._catheters.append(Catheter())
        track_ids = result.electrode_track_ids
        points = np.asarray(result.electrodes, np.float64)
        for msg, catheter in zip(self._catheters, result.catheters, strict=False):
            indices = np.asarray(catheter.electrodes, np.int64)
            electrodes = points[indices]
            centerline = np.asarray(catheter.centerline, np.float64)
            (x, y), (dx, dy) = (float(v) for v in catheter.tip), catheter.tip_direction
            rotation = _yaw(dx, dy)
            msg.track_id = int(catheter.track_id)
            msg.type = catheter.type
            msg.type_score = float(catheter.type_score)
            _set_pose(msg.tip_px, x, y, rotation)
            direction = msg.tip_direction
            direction.x, direction.y, direction.z = float(dx), float(dy), 0.0
            msg.centerline_px = _numbers(centerline, np.float64, "d")
            msg.electrodes_px = _numbers(electrodes, np.float64, "d")
            msg.electrode_scores = _numbers(result.scores[indices], np.float32, "f")
            msg.electrode_index_from_tip = _numbers(np.arange(len(indices)), np.uint16, "H")
            msg.electrode_track_ids = _numbers(
                track_ids[indices] if track_ids is not None else np.full(len(indices), -1),
                np.int32,
                "i",
            )
            if spacing_m > 0:
                _set_pose(msg.tip_m, x * spacing_m, y * spacing_m, rotation)
                msg.centerline_m = _numbers(centerline * spacing_m, np.float64, "d")
                msg.electrodes_m = _numbers(electrodes * spacing_m, np.float64, "d")
            else:
                _set_pose(msg.tip_m, 0.0, 0.0, (0.0, 1.0))
                msg.centerline_m = array.array("d")
                msg.electrodes_m = array.array("d")
        out, timings = self._msg, result.timings
        out.header = header
        out.width, out.height = int(size[0]), int(size[1])
        out.pixel_spacing_m = float(spacing_m)
        out.catheters = self._catheters[: len(result.catheters)]
        out.preprocess_ms = float(timings.get("preprocess", 0.0))
        out.inference_ms = float(timings.get("inference", 0.0))
        out.postprocess_ms = float(timings.get("postprocess", 0.0))
        out.tracking_ms = float(timings.get("tracking", 0.0))
        out.total_ms = float(timings.get("total", 0.0))
        out.latency_ms = 0.0
        return out


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
    rotations = [_yaw(dx, dy) for dx, dy in np.reshape(directions, (-1, 2)).tolist()]
    return PoseArray(
        header=header,
        poses=[
            Pose(position=p, orientation=Quaternion(x=0.0, y=0.0, z=z, w=w))
            for p, (z, w) in zip(positions, rotations, strict=True)
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
