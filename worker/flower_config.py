"""Celery settings for Flower: ``celery --config worker.flower_config flower``.

The broker is ``IMSREP_REDIS_URL`` (or ``REDIS_URL``, or ``.env``), read like every other setting, with the same
transport, Sentinel master, passwords and timeouts as every other process (``config.celery.broker_config``), so a
Redis password never appears on Flower's command line. Flower learns queue names by asking the workers, once at its
start and on a refresh; started before any worker (as docker compose may well do) its Broker tab would list only
Celery's default queue. With the stage queues and the waiting lines declared here it lists every one of them, with
its length, from the start. Imports no task code, so Flower runs without it.
"""

from kombu import Queue

from config.celery import broker_config
from config.settings import load_settings
from worker.data.keyspace import Keyspace
from worker.domain.pools import pools
from worker.queues import ALL_QUEUES

# kombu's own transport, chosen by the URL's scheme (redis or sentinel): Flower only reads the broker, and its Broker
# tab finds Redis by that scheme, which a transport named by class path would replace.
_settings = load_settings()
_broker = broker_config(_settings)
# Workers read only the base list of a queue (priority_steps [0]); Flower keeps its default steps, so its Broker tab
# adds each pool's waiting line (the queue's priority-9 list, worker/data/keyspace.py) to the queue's length.
_broker["broker_transport_options"] = {
    k: v for k, v in _broker["broker_transport_options"].items() if k != "priority_steps"
}
globals().update({k: v for k, v in _broker.items() if k != "broker_transport"})
# The stage queues and each pool's waiting line, as the workers subscribe to them (worker/celery_app.py): the
# same list whether or not Flower has asked a worker yet.
_lines = [Keyspace(_settings.key_prefix).waiting_queue(pool.name) for pool in pools(_settings)]
task_queues = [Queue(name) for name in [*ALL_QUEUES, *_lines]]
task_default_queue = ALL_QUEUES[0]
