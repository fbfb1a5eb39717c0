"""What this machine's CPU runs fast, and how many threads a fit should use on it.

Users train on laptops and shared servers, where other processes take cores. torch runs on
GNU OpenMP (``libgomp``, bundled with the wheel; ``torch.__config__.parallel_info()``), whose
idle threads spin for about 300,000 rounds before they sleep, and whose every parallel region
waits for its slowest thread. On two busy cores two such threads spend their share spinning
and waiting on each other: an eng-wiki fit took 15x as long beside three CPU-bound processes
while sm-svm took 3x. Two levers, both leaving alone whatever the user set:

- :func:`prefer_passive_wait`, called when ``fglab`` is imported: ``OMP_WAIT_POLICY=PASSIVE``
  (idle threads sleep at once). libgomp reads it once, when torch loads it, so it takes
  effect only where fglab is imported before torch.
- :func:`set_fit_threads`, called by the commands that train (``fglab train``, ``fglab
  reproduce``; :func:`set_threads` with their ``--threads``) before any work, never inside a
  fit (library code leaves the process-wide count alone): as many torch threads as there are
  idle cores (at most two), measured over a fifth of a second from ``/proc/stat``.

``FGLAB_THREAD_POLICY=fixed`` restores the earlier behaviour (OpenMP's spinning waits, two
threads a fit), for comparison (``benchmarks/shared_cores.py``).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: ``adaptive`` (default) or ``fixed`` (the earlier behaviour).
POLICY_VARIABLE = "FGLAB_THREAD_POLICY"
POLICIES = ("adaptive", "fixed")
#: Set by a user, these fix the thread count: fglab then leaves torch's as it is.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: A fit's small products gain nothing from more threads than this.
MAX_FIT_THREADS = 2
#: Seconds over which the idle cores are measured before training.
IDLE_INTERVAL = 0.2
PROC_STAT = Path("/proc/stat")


def machine_memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Bytes of memory available to new work now (the kernel's ``MemAvailable``: free plus
    reclaimable cache), or the free pages where that is not known."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


@functools.cache  # asked every training step; the answer never changes
def fast_bfloat16() -> bool:
    """True where oneDNN runs bfloat16 matrix products and convolutions natively (AVX-512
    BF16 or AMX); elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def thread_policy(environ: Mapping[str, str] = os.environ) -> str:
    """The thread policy ``FGLAB_THREAD_POLICY`` names; ``adaptive`` where unset or unknown."""
    value = environ.get(POLICY_VARIABLE, "").strip().lower() or "adaptive"
    if value not in POLICIES:
        logger.warning("%s must be one of %s, got %r: using adaptive",
                       POLICY_VARIABLE, ", ".join(POLICIES), value)
        return "adaptive"
    return value


def prefer_passive_wait(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Let idle OpenMP threads sleep instead of spinning: ``OMP_WAIT_POLICY=PASSIVE``, unless
    the user set ``OMP_WAIT_POLICY`` or chose the fixed policy. True if it set it.

    Must run before torch is imported (libgomp reads it once, when loaded); later it only
    reaches OpenMP runtimes loaded afterwards. Child processes inherit it."""
    if "OMP_WAIT_POLICY" in environ or thread_policy(environ) == "fixed":
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if "torch" in sys.modules:
        logger.debug("torch was imported before fglab: its OpenMP threads keep spinning")
    return True


def _cpu_times(cpus: set[int], stat: Path = PROC_STAT) -> tuple[int, int] | None:
    """(idle, total) clock ticks of ``cpus`` since boot from ``/proc/stat``; None if
    unreadable. Idle counts idle and iowait; total also counts time stolen by a hypervisor."""
    try:
        lines = stat.read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    idle = total = 0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
        idle += ticks[3] + ticks[4]
        total += sum(ticks)
    return (idle, total) if total else None


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return set(range(os.cpu_count() or 1))


def idle_cores(interval: float = IDLE_INTERVAL, stat: Path = PROC_STAT) -> float | None:
    """How many of the cores this process may run on were idle over the next ``interval``
    seconds (this process sleeps meanwhile, so what it sees is what others leave); None
    where ``/proc/stat`` cannot be read (outside Linux)."""
    cpus = _affinity()
    first = _cpu_times(cpus, stat)
    if first is None:
        return None
    time.sleep(interval)
    second = _cpu_times(cpus, stat)
    if second is None or second[1] <= first[1]:
        return None
    return len(cpus) * (second[0] - first[0]) / (second[1] - first[1])


def threads_for(idle: float | None, ceiling: int) -> int:
    """One thread per idle core (rounded), at least 1 and at most ``ceiling``; ``ceiling``
    where the idle cores are unknown. Beside a CPU-bound process on two cores one thread
    runs undisturbed, while two would wait for each other at every parallel region."""
    if idle is None:
        return ceiling
    return max(1, min(ceiling, int(idle + 0.5)))


@dataclass
class _Threads:
    """What fglab set torch's thread count to, and the most it may set."""

    ceiling: int | None = None
    chosen: int | None = None


_threads = _Threads()


def set_fit_threads(environ: Mapping[str, str] = os.environ, idle: float | None = None) -> int:
    """Set torch's thread count for the fits to come (call it before training: fit leaves
    it alone, a script that fits calls this) and return it. A count the user fixed
    (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, or ``torch.set_num_threads`` to anything but
    what fglab last set) is kept. Otherwise one thread per idle core, between 1 and
    ``min(2, torch's count before fglab first set it)``.
    ``idle``: the idle cores if already measured (tests); measured here if None.

    The thread count changes only the order in which sums are added (float rounding)."""
    import torch

    current = torch.get_num_threads()
    if thread_policy(environ) == "fixed":
        chosen = min(MAX_FIT_THREADS, current)
    elif any(name in environ for name in THREAD_VARIABLES) or (
        _threads.chosen is not None and current != _threads.chosen
    ):
        logger.debug("keeping the thread count the user set: %d", current)
        return current
    else:
        if _threads.ceiling is None:
            _threads.ceiling = min(MAX_FIT_THREADS, current)
        idle = idle_cores() if idle is None else idle
        chosen = threads_for(idle, _threads.ceiling)
        logger.debug("fit threads: %d (idle cores: %s)", chosen, idle)
    if chosen != current:
        torch.set_num_threads(chosen)
    _threads.chosen = chosen
    return chosen


def set_threads(threads: int | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """Set torch's thread count for a command that trains and return it: ``threads`` if
    given (``--threads N``), otherwise what :func:`set_fit_threads` chooses."""
    if threads is None:
        return set_fit_threads(environ)
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    _threads.chosen = threads
    return threads
