"""Running a policy on a robot, ROS-free: the configured policy (:mod:`.backend`), the real-time chunk
runner (:mod:`.chunk_runner`), joint safety limits (:mod:`.safety`) and prompt validation
(:mod:`.prompt`). The nodes in :mod:`humanprompt_ros.nodes` are thin adapters over these."""
