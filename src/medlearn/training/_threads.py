"""CPU threads: one setting from the machine, never oversubscribed."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from medlearn.errors import ConfigError

__all__ = ["available_cpus", "configure_threads"]

_interop_configured = False


def _cgroup_cpu_limit() -> int | None:
    """CPUs allowed by a container's CPU quota (cgroup v2 or v1), or ``None`` if unlimited."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if len(text) == 2 and text[0] != "max":
            return max(1, math.ceil(int(text[0]) / int(text[1])))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a container CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (and inter-op threads to 1) and return the count.

    Oversubscribing threads (more than the CPUs the process may use) makes CPU training many
    times slower, so the default follows the machine rather than torch's own guess.

    Args:
        n: threads to use. ``None`` uses ``OMP_NUM_THREADS`` when it is set to a positive
            integer, else :func:`available_cpus`.

    Returns:
        The number of intra-op threads now in use.

    Raises:
        ConfigError: if ``n`` is not a positive integer.
    """
    if n is None:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        n = int(env) if env.isdigit() and int(env) > 0 else available_cpus()
    elif isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(
            f"The 'num_threads' parameter must be a positive integer or None. Got {n!r}.",
            hint="Leave it unset to use every CPU available to this process.",
        )
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    global _interop_configured
    if not _interop_configured:
        _interop_configured = True
        try:  # allowed only before any inter-op parallel work has started
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
    return n
