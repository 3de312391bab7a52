"""The recorder node (humanprompt_ros.nodes.recorder, unchanged) with a slow camera path: each frame's spool write
first sleeps DELAY seconds, as a write to a slow or busy disk blocks (a sleep, like a blocked write, releases the
GIL). test_node_recorder.py runs it to show that slow frames never hold up the state messages.

    python slow_recorder.py DELAY --ros-args -p ...
"""

from __future__ import annotations

import sys
import time

from humanprompt_ros import recording
from humanprompt_ros.nodes import recorder


def main() -> int:
    delay = float(sys.argv[1])
    append = recording.FrameSpool.append

    def slow_append(self, frame):
        time.sleep(delay)
        append(self, frame)

    recording.FrameSpool.append = slow_append
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    return recorder.main()


if __name__ == "__main__":
    raise SystemExit(main())
