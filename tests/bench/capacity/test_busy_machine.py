"""A busy machine is said, not measured: the CPU that processes outside the command's tree use during a step is
read (psutil) and, past OTHER_CORES_MAX, makes the search not valid, naming the steps."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.capacity.model import CapacityResult, ModeResult, Step, WorkerPoint
from bench.capacity.runner import OTHER_CORES_MAX, CpuSampler
from bench.capacity.validity import validity

# a process that burns CPU in itself and in one child: a tree of two busy processes
BUSY_TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nend = time.time() + 4\\nwhile time.time() < end: pass"])
end = time.time() + 4
while time.time() < end:
    pass
child.wait()
"""


def test_cpu_of_the_commands_own_tree_is_ours_and_of_any_other_process_is_others() -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY_TREE])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(6)"])
    try:
        time.sleep(0.3)  # the busy tree's child has started
        mine, theirs = CpuSampler(period_s=0.5, root=busy.pid), CpuSampler(period_s=0.5, root=idle.pid)
        with mine.running(), theirs.running():
            t0 = time.time()
            time.sleep(3.0)
            t1 = time.time()
        counted_ours, counted_other = mine.other_cores(t0, t1), theirs.other_cores(t0, t1)
        assert counted_ours is not None and counted_other is not None
        # the same window, the same background: only whose tree the busy processes are in differs (they get
        # ~1.5-2 cores on an idle 2-core machine, at least ~0.5 in a loaded suite)
        assert counted_other - counted_ours > 0.3, (counted_other, counted_ours)
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait()


def _step(rate: float, other: float | None) -> Step:
    return Step(rate=rate, arrival_rate=rate, requests=1000, other_cores=other)


def test_steps_run_beside_other_work_make_the_search_not_valid_and_are_named() -> None:
    quiet = CapacityResult(id="x", created_ts=0.0, modes={"sync": ModeResult(percentile="p95",
                           steps=[_step(10.0, 0.02), _step(20.0, None)])})  # fmt: skip
    assert validity(quiet, 2).valid
    busy = quiet.model_copy(deep=True)
    busy.modes["sync"].steps.append(_step(40.0, 0.61))
    busy.workers = {"1": WorkerPoint(max_job_rate=22.6, step=_step(84.0, OTHER_CORES_MAX + 0.2))}
    v = validity(busy, 2)
    assert not v.valid
    (note,) = [n for n in v.notes if "machine was busy" in n]
    assert "used up to 0.61 cores during 2 step(s) (sync 40 req/s, 1 worker(s) 84 req/s)" in note, note
