"""HumanPrompt-Sim: a MuJoCo benchmark in which a human-like hand and the Allegro hand do the same
tasks (SPEC §3). See docs/benchmark.md.

    from humanprompt_ros.sim import SimEnv, load_task, load_tasks, expert_episode
"""

from .env import EMBODIMENTS, Observation, SimEnv, home_action
from .runner import EpisodeRecord, expert_episode, run_episode
from .scene import SimConfig, load_sim_config
from .tasks import SKILLS, Task, load_task, load_tasks, sample_instance

__all__ = ["EMBODIMENTS", "Observation", "SimEnv", "home_action", "EpisodeRecord", "expert_episode", "run_episode",
           "SimConfig", "load_sim_config", "SKILLS", "Task", "load_task", "load_tasks", "sample_instance"]
