"""Small facts about processes and ports of this machine, shared by the local services
(Kafka broker, standalone cluster) and the crash-aware bookkeeping (MLflow runs, leases)."""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
