"""The process's open-file limit (RLIMIT_NOFILE), raised as far as the system allows.

Every charge point holds sockets (Central: two per CP), and benchmarks open tens of
thousands: far above the usual soft limit of 1024. The hard limit is the administrator's
(systemd ``LimitNOFILE``, docker ``--ulimit nofile``); only root may raise it.
"""

from __future__ import annotations

import contextlib
import resource

__all__ = ["raise_open_files_limit"]

# What "as far as allowed" means when the hard limit is unlimited.
_UNLIMITED_WANTED = 1 << 20


def raise_open_files_limit(wanted: int | None = None) -> int:
    """Lift the soft limit towards ``wanted``; returns the soft limit now in force.

    Children started afterwards inherit the new limit.

    Args:
        wanted: descriptors to allow; None for all the hard limit allows. Above a finite
            hard limit, the hard limit is raised too when we may (root); otherwise the
            hard limit is as far as it goes.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted is None:
        wanted = _UNLIMITED_WANTED if hard == resource.RLIM_INFINITY else hard
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        wanted = hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft
