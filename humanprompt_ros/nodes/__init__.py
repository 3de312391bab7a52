"""ROS 2 nodes of humanprompt_ros: thin adapters over the ROS-free core.

Each node is a module with ``main()`` (a console script) and can be run with
``python -m humanprompt_ros.nodes.<name> --ros-args ...``. Their parameters are typed dataclasses
in :mod:`humanprompt_ros.config.nodes` (importable without rclpy), with defaults in
``config/<node>.yaml``. The node graph (which nodes, which parameters) is
:mod:`humanprompt_ros.graph`.
"""
