"""Celery settings for Flower: ``celery --broker URL --config worker.flower_config flower``.

Flower learns queue names by asking the workers, once at its start and on a refresh; started before any worker (as
docker compose may well do) its Broker tab would list only Celery's default queue. With the stage queues declared
here it lists every one of them, with its length, from the start. Imports nothing but the queue names, so Flower
still runs without our settings or task code.
"""

from kombu import Queue

from worker.queues import ALL_QUEUES

task_queues = [Queue(name) for name in ALL_QUEUES]
task_default_queue = ALL_QUEUES[0]
