"""ROS 2 adapters of humanprompt_ros.

This subpackage is the only part of humanprompt_ros that imports rclpy or ROS message
packages. The learning core (everything outside ``humanprompt_ros.ros``) must stay importable
without rclpy, so nothing here is imported by ``humanprompt_ros/__init__.py``: import the
modules explicitly, e.g. ``from humanprompt_ros.ros.image import image_to_numpy``.
"""
