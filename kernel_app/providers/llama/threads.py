"""How many threads llama.cpp should use here: from physical cores, not logical CPUs.

llama.cpp's threads wait for each other at every token, so one thread that loses its core (to a
hyper-thread sibling, or to another process) stalls them all: on a 2-core machine the default tier ran
steadily on 1 thread and collapsed on 2 (docs/models.md, "Speed and threads"), so the default leaves
one physical core free. Override with KERNEL_APP_LOCAL_THREADS or ``local_threads``.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_DEFAULT_THREADS = 8


def usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def physical_cores(cpus: set[int] | None = None, sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """Distinct (package, core) pairs among the CPUs this process may run on; logical CPUs if unknown."""
    cpus = usable_cpus() if cpus is None else cpus
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(len(cpus), 1)
        cores.add((package, core))
    return max(len(cores), 1)


def default_threads(cores: int | None = None) -> int:
    """One thread per physical core but one (at most 8); 1 on a machine of two cores or fewer."""
    cores = physical_cores() if cores is None else cores
    return max(1, min(cores - 1, MAX_DEFAULT_THREADS))
