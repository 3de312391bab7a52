"""Evaluation: closed-loop rollouts in the simulator (:mod:`.rollout`), how failed episodes ended
(:mod:`.failures`), open-loop action error (:mod:`.actions`), stage-1 prediction and probe metrics
(:mod:`.stage1`) and statistics (:mod:`.stats`). Eval files and tables are :mod:`humanprompt_ros.sim.results`."""
