"""ROS 2 integration of cathtrack (the ``cathtrack-ros`` node).

The node itself is delivered by the ROS issue; this package reserves its place in the wheel
so that ``pip install cathtrack[ros]`` has a stable import path.
"""
