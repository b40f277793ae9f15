"""Named crash points between the commits of a stage, for crash-consistency tests.

A stage that commits more than one table calls :func:`crash_point` after each commit. With
``UDP_CRASH_AT`` set to that point's name the process dies there: by SIGKILL of itself when
``UDP_CRASH_MODE=kill`` (what the harness uses: nothing after the commit runs, not even
``finally`` blocks), else by raising :class:`InjectedCrash` (in-process tests). Unset, a
crash point costs one environment look-up.
"""

from __future__ import annotations

import os
import signal

CRASH_AT = "UDP_CRASH_AT"
CRASH_MODE = "UDP_CRASH_MODE"


class InjectedCrash(BaseException):
    """Raised at the crash point named by ``UDP_CRASH_AT`` (a BaseException, so that no
    ``except Exception`` in the stage swallows it)."""


def crash_point(name: str) -> None:
    """Die here if ``UDP_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_AT) != name:
        return
    if os.environ.get(CRASH_MODE) == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedCrash(name)
