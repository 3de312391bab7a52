"""humanprompt_ros: a dexterous hand does a task after watching a human do it once.

The core imports without rclpy: :mod:`.hand` (kinematics, retargeting), :mod:`.policies` (the Policy
contract, baselines, the learned policy), :mod:`.models` (PyTorch), :mod:`.train`, :mod:`.eval`,
:mod:`.sim` (HumanPrompt-Sim), :mod:`.control` (running a policy in real time) and :mod:`.config`. The
ROS 2 layer (:mod:`.ros`, :mod:`.nodes`) and the console scripts (:mod:`.cli`) are thin adapters over
it. ``docs/architecture.md`` maps the modules and the data flow.
"""

__version__ = "0.1.0"
