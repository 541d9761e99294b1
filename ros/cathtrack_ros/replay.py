"""``cathtrack-ros-replay SOURCE --rate HZ``: publishes frames on ``image`` (sensor_msgs/Image).

SOURCE is ``synth`` or ``synth:SEED`` (a synthetic sequence of ``cathtrack.data.synth``, 32FC1)
or any input of :func:`cathtrack.io.iter_inputs` (an image folder, a video, a DICOM file).
Each message is stamped with the ROS clock when it is published.
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
from cathtrack_ros.node import IMAGE_QOS

__all__ = ["frames", "main"]


def frames(source: str, count: int) -> Iterator[np.ndarray]:
    """The frames of SOURCE as arrays :func:`array_to_image` takes (unreadable files are reported
    on stderr and skipped; other dtypes are normalised to float32)."""
    if source == "synth" or source.startswith("synth:"):
        from cathtrack.data.synth import preset, render_sequence

        seed = int(source.partition(":")[2] or 0)
        for sample in render_sequence(preset("clinical"), seed, count):
            yield sample.image
        return
    from cathtrack.data.normalize import normalize_frame
    from cathtrack.io import ReadError, iter_inputs

    for item in iter_inputs(source):
        if isinstance(item, ReadError):
            print(f"skipped: {item}", file=sys.stderr)
            continue
        image = item.image
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        native = image.dtype in (np.uint8, np.uint16, np.float32) and image.ndim == 2
        colour = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        yield image if native or colour else normalize_frame(image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cathtrack-ros-replay", description=__doc__)
    parser.add_argument("source", help="'synth', 'synth:SEED', an image folder, video or DICOM")
    parser.add_argument("--rate", type=float, default=15.0, help="frames per second (> 0)")
    parser.add_argument("--frames", type=int, default=100, help="length of a synthetic sequence")
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    parser.add_argument("--frame-id", default="detector", help="header.frame_id")
    args, ros_args = parser.parse_known_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    rclpy.init(args=ros_args)
    node = Node("cathtrack_replay")
    publisher = node.create_publisher(Image, "image", IMAGE_QOS)
    period = 1.0 / args.rate
    published = 0
    try:
        deadline = time.monotonic()
        while rclpy.ok():
            for image in frames(args.source, args.frames):
                header = Header(stamp=node.get_clock().now().to_msg(), frame_id=args.frame_id)
                publisher.publish(array_to_image(image, header))
                published += 1
                deadline += period
                time.sleep(max(0.0, deadline - time.monotonic()))
            if not args.loop:
                break
    except KeyboardInterrupt:
        pass
    finally:
        node.get_logger().info(f"published {published} frames")
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
