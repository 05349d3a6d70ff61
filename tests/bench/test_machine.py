"""The machine-speed probe: a fixed piece of work timed in the probing thread's own CPU time, sampled while a run
goes on."""

from __future__ import annotations

import math
import threading
import time

from bench import machine
from cli.processes import wait_until


def test_the_reference_work_counts_its_own_threads_cpu_only() -> None:
    # Another thread spins meanwhile, taking turns with it for the GIL: the process's CPU time grows by both
    # threads' work, the reference by its own alone.
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    busy = threading.Thread(target=spin, daemon=True)
    busy.start()
    try:
        before = time.process_time()
        own = machine.reference_ms(3000)  # many GIL switch intervals long
        both = (time.process_time() - before) * 1000
    finally:
        stop.set()
        busy.join()
    assert 0 < own < both * 0.75


def test_the_probe_samples_until_its_block_ends_and_reports_their_median() -> None:
    with machine.SpeedProbe(interval=0.01) as probe:
        wait_until(lambda: len(probe.samples) >= 3, 30, "three samples")
    assert not probe._thread.is_alive()  # joined: nothing is sampled after the block
    taken = sorted(probe.samples)
    assert all(sample > 0 for sample in taken)
    assert taken[(len(taken) - 1) // 2] <= probe.median() <= taken[len(taken) // 2]


def test_a_probe_with_no_sample_reports_nan() -> None:
    assert math.isnan(machine.SpeedProbe().median())
