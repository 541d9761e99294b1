"""ROS 2 integration of cathtrack: the ``cathtrack-ros`` node (:mod:`cathtrack_ros.node`) and
``cathtrack-ros-replay`` (:mod:`cathtrack_ros.replay`); see docs/ros.md."""

from pathlib import Path

# A Fast DDS profile with a 64 MiB shared-memory segment: the default 512 KiB one cannot carry a
# 4K frame as best-effort fragments. FASTDDS_DEFAULT_PROFILES_FILE=<this path> in every process.
LARGE_IMAGES_PROFILE = Path(__file__).with_name("large_images.xml")
