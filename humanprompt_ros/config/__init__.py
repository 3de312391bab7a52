"""Configuration: the YAML files under ``config/`` mapped onto validated dataclasses.

One module per kind of file: :mod:`.loader` (reading any YAML into any dataclass, with errors that
name the file and key), :mod:`.train` (what every training run shares), :mod:`.stage1`
(``config/stage1.yaml``), :mod:`.stage2` (``config/stage2.yaml``), :mod:`.benchmark`
(``config/benchmark.yaml``) and :mod:`.nodes` (``config/<node>.yaml``). The simulator's, the tasks'
and the hands' configs live beside the code they configure (``sim/scene.py``, ``sim/tasks.py``,
``hand/hand.py``). Every dataclass default equals the shipped YAML's value (a test checks it).
"""

from humanprompt_ros.config.loader import ConfigError, from_dict, load_config, read_yaml, to_dict

__all__ = ["ConfigError", "from_dict", "load_config", "read_yaml", "to_dict"]
