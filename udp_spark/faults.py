"""Named crash points between the commits of a stage, for crash-consistency tests.

Every stage calls :func:`crash_point` right after each commit it makes (a Delta table, the
MLflow run, registration or alias, its ``audit.runs`` row); :data:`udp_spark.chaos.POINTS`
lists them. With ``UDP_CRASH_AT`` set to a point's name the process dies there: by SIGKILL
of itself when ``UDP_CRASH_MODE=kill`` (what the harness uses: nothing after the commit
runs, not even ``finally`` blocks), else by raising :class:`InjectedCrash` (in-process
tests). ``name#n`` dies the n-th time the point is reached (a point inside a loop, e.g. the
third source ingest lands). Unset, a crash point costs one environment look-up.
"""

from __future__ import annotations

import os
import signal

CRASH_AT = "UDP_CRASH_AT"
CRASH_MODE = "UDP_CRASH_MODE"

_reached: dict[str, int] = {}  # point -> times reached in this process (for name#n)


class InjectedCrash(BaseException):
    """Raised at the crash point named by ``UDP_CRASH_AT`` (a BaseException, so that no
    ``except Exception`` in the stage swallows it)."""


def crash_point(name: str) -> None:
    """Die here if ``UDP_CRASH_AT`` names this point (``name`` or ``name#n``)."""
    target = os.environ.get(CRASH_AT)
    if not target or not target.startswith(name):
        return
    wanted, _, nth = target.partition("#")
    if wanted != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if nth and _reached[name] != int(nth):
        return
    if os.environ.get(CRASH_MODE) == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedCrash(target)
