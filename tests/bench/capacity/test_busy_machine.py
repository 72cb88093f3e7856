"""A busy machine is said, not measured: the CPU that processes outside the command's tree use during a step is
read (psutil) and, past OTHER_CORES_MAX, makes the search not valid, naming the steps. The CPU of the command's
own processes is split by role (steps[].cores)."""

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


BUSY = "import time\nend = time.time() + 4\nwhile time.time() < end: pass"


def test_the_cores_of_the_commands_own_processes_are_split_by_role() -> None:
    # two busy children of this process: one is named the API, the other is the rest of the tree (the load
    # generator's place); this process itself (the command's place) sleeps
    api = subprocess.Popen([sys.executable, "-c", BUSY])
    rest = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(0.3)
        sampler = CpuSampler(period_s=0.5, roles=lambda: {"api": [api.pid], "redis": []})
        with sampler.running():
            t0 = time.time()
            time.sleep(3.0)
            t1 = time.time()
        cores = sampler.role_cores(t0, t1)
        assert cores is not None and set(cores) == {"api", "redis", "command", "generator"}, cores
        # each busy child gets ~1 core on an idle 2-core machine, at least ~0.25 in a loaded suite; a sleeping
        # process a few thousandths
        assert cores["api"] > 0.1 and cores["generator"] > 0.1, cores
        assert cores["redis"] == 0.0 and cores["command"] < 0.1, cores
        assert CpuSampler(period_s=0.5).role_cores(t0, t1) is None  # no roles given: not sampled
    finally:
        for proc in (api, rest):
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
