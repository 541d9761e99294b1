"""ROS 2 integration of cathtrack: the ``cathtrack-ros`` node (:mod:`cathtrack_ros.node`) and
``cathtrack-ros-replay`` (:mod:`cathtrack_ros.replay`); see docs/ros.md."""
