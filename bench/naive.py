"""The naive way, with the same ``ImsClient``: check the image, copy it, wait for the job, check the copy, next.

``replicate_one`` is one item done that way, polling the job every ``interval`` seconds; ``sequential`` runs items
one after another (the script a user would write first); ``fixed_poller`` runs them ``parallel`` at a time (a
poller with a fixed interval, like Terraform's 10 s), to compare calls per item on the same run.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from config.settings import AccountSettings
from worker.ims.client import ImsClient


@dataclass
class NaiveRun:
    items: int = 0
    seconds: float = 0.0  # wall-clock time of the whole run

    @property
    def per_item(self) -> float:
        return self.seconds / self.items if self.items else float("nan")


def replicate_one(ims: ImsClient, image_id: str, name: str, interval: float) -> None:
    image = ims.get_image(image_id)
    if image is None or image.status != "active":
        return
    job_id = ims.copy_image(image_id, name=name)
    while True:
        time.sleep(interval)
        job = ims.get_job(job_id)
        if job.finished:
            break
    if job.succeeded and job.image_id:
        ims.get_image(job.image_id)


def sequential(account: AccountSettings, image_ids: list[str], interval: float, stop: threading.Event) -> NaiveRun:
    run = NaiveRun()
    started = time.monotonic()
    with ImsClient(account, connect_timeout=5, read_timeout=60) as ims:
        for index, image_id in enumerate(image_ids):
            if stop.is_set():
                break
            replicate_one(ims, image_id, f"naive_{index:05d}", interval)
            run.items += 1
    run.seconds = time.monotonic() - started
    return run


def fixed_poller(account: AccountSettings, image_ids: list[str], interval: float, parallel: int) -> NaiveRun:
    started = time.monotonic()
    with ImsClient(account, connect_timeout=5, read_timeout=60) as ims, ThreadPoolExecutor(parallel) as pool:
        names = [f"fixed_{index:05d}" for index in range(len(image_ids))]
        list(pool.map(lambda pair: replicate_one(ims, pair[0], pair[1], interval), zip(image_ids, names, strict=True)))
    return NaiveRun(len(image_ids), time.monotonic() - started)
