"""Crash points for the fault-injection tests.

``crash_point("send:after_smtp")`` kills the process with SIGKILL when the environment variable
``SPSBOT_CRASH_AT`` names that point (optionally ``point@N`` to die on its N-th pass). Production
never sets the variable, and then a crash point costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal

_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = os.environ.get("SPSBOT_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
