"""``cathtrack-ros-replay SOURCE --rate HZ``: publishes frames on ``image`` (sensor_msgs/Image).

SOURCE is ``synth`` or ``synth:SEED`` (a synthetic sequence of ``cathtrack.data.synth``, 32FC1)
or any input of :func:`cathtrack.io.iter_inputs` (an image folder, a video, a DICOM file). Frames
go out every 1/HZ s (a late frame does not make the next ones early), each stamped with the ROS
clock just before it is published. Publishing starts once a subscriber is there (--wait).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from cathtrack_ros.convert import array_to_image
from cathtrack_ros.node import IMAGE_QOS, version_text

__all__ = ["frames", "main"]

# After a subscriber shows up here, the subscriber still has to match this publisher before it
# accepts data (a best-effort reader drops samples of writers it does not know yet).
DISCOVERY_SETTLE_S = 0.5


def frames(source: str, count: int) -> Iterator[np.ndarray]:
    """The frames of SOURCE as arrays :func:`array_to_image` takes (unreadable files are reported
    on stderr and skipped; other dtypes are normalised to float32). ``count`` is the length of a
    synthetic sequence. A pixel spacing found in the files (DICOM) is reported on stderr once."""
    if source == "synth" or source.startswith("synth:"):
        from cathtrack.data.synth import preset, render_sequence

        seed = int(source.partition(":")[2] or 0)
        for sample in render_sequence(preset("clinical"), seed, count):
            yield sample.image
        return
    from cathtrack.data.normalize import normalize_frame
    from cathtrack.io import ReadError, iter_inputs

    spacing_reported = False
    for item in iter_inputs(source):
        if isinstance(item, ReadError):
            print(f"skipped: {item}", file=sys.stderr)
            continue
        if item.pixel_spacing_mm and not spacing_reported:
            print(
                f"{item.source}: pixel spacing {item.pixel_spacing_mm:g} mm (for poses in metres, "
                f"run the node with -p pixel_spacing_mm:={item.pixel_spacing_mm:g})",
                file=sys.stderr,
            )
            spacing_reported = True
        image = item.image
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        native = image.dtype in (np.uint8, np.uint16, np.float32) and image.ndim == 2
        colour = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        yield image if native or colour else normalize_frame(image)


def _wait_for_subscriber(publisher, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if publisher.get_subscription_count() > 0:
        time.sleep(DISCOVERY_SETTLE_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cathtrack-ros-replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  cathtrack-ros-replay synth:7 --rate 15
  cathtrack-ros-replay frames/ --rate 10 --loop --frame-id detector
  cathtrack-ros-replay run.dcm --ros-args -r image:=/xray/image""",
    )
    parser.add_argument("source", help="'synth', 'synth:SEED', an image folder, video or DICOM")
    parser.add_argument("--rate", type=float, default=15.0, help="frames per second (> 0)")
    parser.add_argument("--frames", type=int, default=100, help="length of a synthetic sequence")
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    parser.add_argument("--frame-id", default="detector", help="header.frame_id")
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="seconds to wait for a subscriber before the first frame (0: start at once)",
    )
    parser.add_argument("--version", action="version", version=version_text("cathtrack-ros-replay"))
    args, ros_args = parser.parse_known_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    rclpy.init(args=ros_args)
    node = Node("cathtrack_replay")
    publisher = node.create_publisher(Image, "image", IMAGE_QOS)
    period = 1.0 / args.rate
    published = 0
    try:
        # A synthetic sequence is rendered once; files are read as they go out, on every pass.
        synthetic = args.source == "synth" or args.source.startswith("synth:")
        sequence = list(frames(args.source, args.frames)) if synthetic else None
        _wait_for_subscriber(publisher, args.wait)
        next_time = time.monotonic()
        while rclpy.ok():
            for image in sequence if sequence is not None else frames(args.source, args.frames):
                msg = array_to_image(image, Header(frame_id=args.frame_id))
                time.sleep(max(0.0, next_time - time.monotonic()))
                msg.header.stamp = node.get_clock().now().to_msg()
                publisher.publish(msg)
                published += 1
                next_time += period
                if next_time < time.monotonic():  # a slow read: no burst to catch up
                    next_time = time.monotonic() + period
            if not args.loop or published == 0:
                break
        # The last frame's period too: leaving at once could end the process before DDS has sent
        # it (best effort: seen as a lost last frame about one run in three).
        time.sleep(max(0.0, next_time - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        node.get_logger().info(f"published {published} frames")
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
