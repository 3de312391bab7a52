"""humanprompt_ros: a dexterous hand does a task after watching a human do it once.

The learning core in this package (hand kinematics and retargeting, models, training, simulation,
data) imports without rclpy; the ROS 2 nodes under :mod:`humanprompt_ros.nodes` are thin adapters.
"""

__version__ = "0.1.0"
