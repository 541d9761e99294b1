"""ROS 2 integration of cathtrack: the ``cathtrack-ros`` node (:mod:`cathtrack_ros.node`) and
``cathtrack-ros-replay`` (:mod:`cathtrack_ros.replay`); see docs/ros.md."""

from pathlib import Path

# The ROS 2 release whose pip wheels the [ros] extra installs (rclpy 9.1, rosidl 4.9).
ROS_DISTRIBUTION = "kilted"
# Every parameter of the node with its default, for --ros-args --params-file.
PARAMETERS_FILE = Path(__file__).with_name("params.yaml")

# A Fast DDS profile with a 64 MiB shared-memory segment: the default 512 KiB one cannot carry a
# 4K frame as best-effort fragments. FASTDDS_DEFAULT_PROFILES_FILE=<this path> in every process.
LARGE_IMAGES_PROFILE = Path(__file__).with_name("large_images.xml")
