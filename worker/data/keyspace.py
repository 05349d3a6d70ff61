"""Every Redis key of ims-replicator, made in one place.

``P`` is the key prefix (``IMSREP_KEY_PREFIX``, default ``imsrep``). Nothing outside ``worker.data`` formats a key;
``tests/worker/data/test_boundary.py`` checks it.

=================================  ======  =====================================================================
key                                type    what it holds (owner module in ``worker.data``)
=================================  ======  =====================================================================
``P:item:<id>``                    hash    a ReplicationItem's fields (records)
``P:item:<id>:log``                list    JSON transitions ``{state, at, reason, message}`` (records)
``P:batch:<id>``                   hash    ``id``, ``created_at``, ``total``, ``submitted``, ``priority``, ``label``,
                                           ``admit_cursor``, ``finished_at``, ``selection`` (JSON) and ``sel_*``
                                           progress (records, lifecycle, selections)
``P:batch:<id>:items``             list    item IDs in submission order (records)
``P:batch:<id>:admit``             list    the same IDs grouped by account, while a batch of several accounts is
                                           admitted (records)
``P:batch:<id>:counts``            hash    state -> number of the batch's items in it, and ``received``: its
                                           receiver items succeeded (records)
``P:batch:<id>:seen``              set     image IDs a selecting batch already has items for (selections)
``P:expanding``                    zset    batch ID -> last progress, while its selector is still paging (selections)
``P:plan:<id>``                    hash    a plan: ``state``, ``stage``, ``marker``, counters, ``summary`` (plans)
``P:plan:<id>:items``              list    the items a plan request asked, as JSON (plans)
``P:plan:<id>:verdicts``           hash    position -> the verdict for that item, JSON (plans)
``P:plan:<id>:seen``               set     image IDs a selector plan has judged (plans)
``P:planning``                     zset    plan ID -> last progress, while the worker works it out (plans)
``P:batches``                      zset    batch ID -> created_at (records; lifecycle lists and expires them)
``P:label:<label>``                zset    batch ID -> created_at, the batches with that label (records, lifecycle)
``P:state:<state>``                zset    item ID -> time it entered that state (records; metrics)
``P:due``                          zset    item ID -> when its next step is due (records; reconciler)
``P:admitting``                    zset    batch ID -> when its admit chain's next chunk is due (records)
``P:walk:<batch>``                 hash    account -> where its admit pass's listing walk goes on, ``""`` at the
                                           end; expires (walks)
``P:walk:<batch>:<account>``       hash    image ID -> its record as the pass's walk listed it; expires (walks)
``P:slots:<pool>``                 zset    item ID -> time its replication slot was granted (slots)
``P:ring:<pool>``                  zset    batch ID -> its pass in the pool's fair share (slots)
``P:queue:<pool>:<batch>``         zset    item ID -> its position in the batch, a batch's waiting items in a pool
                                           (slots)
``P:pool:<pool>``                  hash    effective limit, its next raise, virtual time, strides (slots)
``P.waiting.<pool>\\x06\\x169``     list    one entry per queued item: the backlog Flower shows (slots)
``P:quota:<project>``              hash    image quota, used, granted since read, blocked since (slots)
``P:health:<account>``             hash    circuit state, failures, next probe, outage seconds, last check (accounts)
``P:probe:<account>``              string  set while a probe task is scheduled for an open circuit (accounts)
``P:checks:<account>``             zset    item ID -> when its job ended, copies whose new image is yet to be seen
                                           active (checks)
``P:checks:<account>:sent``        string  set while a check of those is scheduled (checks)
``P:hold:<account>``               string  why the account's credentials were refused; expires (accounts)
``P:durations:<pool>``             list    ``"<bytes> <seconds>"`` of the latest successful copies (accounts)
``P:reading:<pool>``               string  ``"<started> <bytes> <fraction> <elapsed>"``: the first look at a copy the
                                           pool has no forecast for, for the copies started with it; expires
                                           (accounts)
``P:ratelimit:<account>``          hash    token bucket ``tokens``, ``ts`` (accounts)
``P:requests:<principal>``         hash    token bucket ``tokens``, ``ts`` of a principal's API requests (limits)
``P:running:<principal>``          zset    batch ID -> created_at, the principal's batches that may have unfinished
                                           items (records; limits)
``P:deliveries:<message id>``      string  deliveries of one Celery message, expires after a day (control)
``P:idempotency:<digest>``         hash    ``fingerprint``, ``kind``, ``id`` its request created (idempotency)
``P:lock:submit:<item id>``        string  held while a submit runs (control)
``P:lock:reconcile``               string  held while a reconciler pass runs (control)
``P:workers``                      zset    worker hostname -> last heartbeat (telemetry)
``P:beats``                        zset    beat hostname -> last tick of its scheduler (telemetry)
``P:lock:beat``                    string  held by the one beat that sends the schedule; expires unless renewed
                                           (control)
``P:refusals``                     hash    ``"<process>:episodes"``, ``"<process>:seconds"`` of Redis refusing
                                           writes (telemetry)
``P:fence``                        string  a counter written to see that Redis takes writes (telemetry) and,
                                           confirmed by WAIT, that every earlier write is on the replicas (idempotency)
``P:primary``                      hash    ``run_id`` of the Redis process the reconciler last met, ``since``
                                           when it replaced another (control)
``P:ims:outcomes``                 hash    ``"<endpoint>:<outcome>"`` -> IMS/KMS/IAM answers (telemetry)
``P:retries``                      hash    ``"<task>:<cause>"`` -> steps rescheduled after an error (telemetry)
``P:latency``                      hash    ``"<state>[@<mode>]:<bucket>"``, ``...:sum``, ``...:count`` (telemetry)
``P:repairs``                      hash    reconciler repair kind -> count (telemetry)
``P:followups``                    hash    ``"<kind>:<outcome>"`` -> copies' follow-ups ended so (telemetry)
``P:audit``                        stream  one JSON record per API call that changed something or was refused
                                           for scope or role; trimmed by time, never by batch (audit)
``P:policy:<id>``                  hash    a policy: ``definition`` (JSON), ``account``, ``region``, owner,
                                           ``next_run_at``, ``runs``, ``starting``, ``last_batch`` (policies)
``P:policy:<id>:runs``             hash    run number -> JSON ``{run, at, batch_id, skipped, message}`` (policies)
``P:policy:<id>:retired``          hash    run number -> JSON list of its retention's verdicts, by copy (policies)
``P:policies``                     zset    policy ID -> created_at, every policy (policies)
``P:policies:due``                 zset    policy ID -> when its next run is due, the active policies (policies)
=================================  ======  =====================================================================

A pool (``worker.domain.pools``) is an account's name (its in-region copies) or ``<account>:cross-region``.

Celery's own keys (the stage queues ``admit``, ``validate``, ... and kombu's ``unacked``/``_kombu.*``) are kombu's;
``broker_queue_lists`` only names the lists one queue is kept in, so its backlog can be counted.
"""

from __future__ import annotations

from dataclasses import dataclass

# kombu's Redis transport keeps a queue's prioritised messages in extra lists: name + "\x06\x16" + step (3, 6, 9).
_PRIORITY_SEP = "\x06\x16"
WAITING_QUEUE_MARK = ".waiting."  # in the name of every pool's waiting-line queue, and of no stage queue
_PRIORITY_SUFFIXES = ("", f"{_PRIORITY_SEP}3", f"{_PRIORITY_SEP}6", f"{_PRIORITY_SEP}9")


@dataclass(frozen=True)
class Keyspace:
    prefix: str = "imsrep"

    # Items and batches.
    def item(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}"

    def item_log(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}:log"

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}:batch:{batch_id}"

    def batch_items(self, batch_id: str) -> str:
        return f"{self.prefix}:batch:{batch_id}:items"

    def batch_admission(self, batch_id: str) -> str:
        return f"{self.prefix}:batch:{batch_id}:admit"

    def batch_counts(self, batch_id: str) -> str:
        return f"{self.prefix}:batch:{batch_id}:counts"

    def selection_seen(self, batch_id: str) -> str:
        return f"{self.prefix}:batch:{batch_id}:seen"

    def expanding(self) -> str:
        return f"{self.prefix}:expanding"

    def plan(self, plan_id: str) -> str:
        return f"{self.prefix}:plan:{plan_id}"

    def plan_items(self, plan_id: str) -> str:
        return f"{self.prefix}:plan:{plan_id}:items"

    def plan_verdicts(self, plan_id: str) -> str:
        return f"{self.prefix}:plan:{plan_id}:verdicts"

    def plan_seen(self, plan_id: str) -> str:
        return f"{self.prefix}:plan:{plan_id}:seen"

    def planning(self) -> str:
        return f"{self.prefix}:planning"

    def batches(self) -> str:
        return f"{self.prefix}:batches"

    def label(self, label: str) -> str:
        return f"{self.prefix}:label:{label}"

    def state(self, state: str) -> str:
        return f"{self.prefix}:state:{state}"

    def due(self) -> str:
        return f"{self.prefix}:due"

    def admitting(self) -> str:
        return f"{self.prefix}:admitting"

    def walk(self, batch_id: str) -> str:
        return f"{self.prefix}:walk:{batch_id}"

    def walked(self, batch_id: str, account: str) -> str:
        return f"{self.prefix}:walk:{batch_id}:{account}"

    # Pools and accounts.
    def slots(self, pool: str) -> str:
        return f"{self.prefix}:slots:{pool}"

    def ring(self, pool: str) -> str:
        return f"{self.prefix}:ring:{pool}"

    def batch_queue(self, pool: str, batch_id: str) -> str:
        return f"{self.prefix}:queue:{pool}:{batch_id}"

    def pool(self, pool: str) -> str:
        return f"{self.prefix}:pool:{pool}"

    def waiting_queue(self, pool: str) -> str:
        """The Celery queue each worker subscribes to so that Flower lists the pool's waiting line (it stays empty,
        and a worker's BRPOP leaves it out: ``worker.broker.MessageQueues``)."""
        return f"{self.prefix}{WAITING_QUEUE_MARK}{pool}"

    def waiting(self, pool: str) -> str:
        """The list that holds one entry per waiting item: the queue's priority-9 list, which Flower's Broker page
        adds to the queue's length and which workers never read (their transport has one priority step)."""
        return f"{self.waiting_queue(pool)}{_PRIORITY_SEP}9"

    def pool_in_key(self, key: str) -> str:
        """The pool a ``slots`` or ``ring`` key belongs to."""
        return key.split(":", 2)[2]

    def pool_patterns(self) -> tuple[str, str]:
        """SCAN patterns of the slot and ring keys (pools no longer configured still have them)."""
        return f"{self.prefix}:slots:*", f"{self.prefix}:ring:*"

    def quota(self, project: str) -> str:
        return f"{self.prefix}:quota:{project}"

    def health(self, account: str) -> str:
        return f"{self.prefix}:health:{account}"

    def checks(self, account: str) -> str:
        return f"{self.prefix}:checks:{account}"

    def checks_sent(self, account: str) -> str:
        return f"{self.prefix}:checks:{account}:sent"

    def probe(self, account: str) -> str:
        return f"{self.prefix}:probe:{account}"

    def hold(self, account: str) -> str:
        return f"{self.prefix}:hold:{account}"

    def durations(self, pool: str) -> str:
        return f"{self.prefix}:durations:{pool}"

    def reading(self, pool: str) -> str:
        return f"{self.prefix}:reading:{pool}"

    def ratelimit(self, account: str) -> str:
        return f"{self.prefix}:ratelimit:{account}"

    # Principals (the API's callers).
    def requests(self, principal: str) -> str:
        return f"{self.prefix}:requests:{principal}"

    def running(self, principal: str) -> str:
        return f"{self.prefix}:running:{principal}"

    # Control.
    def deliveries(self, message_id: str) -> str:
        return f"{self.prefix}:deliveries:{message_id}"

    def idempotency(self, digest: str) -> str:
        """The record of an ``Idempotency-Key``, by the SHA-256 of the key (``worker.data.idempotency``)."""
        return f"{self.prefix}:idempotency:{digest}"

    def submit_lock(self, item_id: str) -> str:
        return f"{self.prefix}:lock:submit:{item_id}"

    def step_lock(self, task: str) -> str:
        return f"{self.prefix}:lock:{task.rsplit('.', 1)[-1]}"  # replication.reconcile: lock:reconcile

    def beat_lock(self) -> str:
        return f"{self.prefix}:lock:beat"

    def fence(self) -> str:
        return f"{self.prefix}:fence"

    def primary(self) -> str:
        return f"{self.prefix}:primary"

    # Telemetry.
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def beats(self) -> str:
        return f"{self.prefix}:beats"

    def refusals(self) -> str:
        return f"{self.prefix}:refusals"

    def ims_outcomes(self) -> str:
        return f"{self.prefix}:ims:outcomes"

    def retries(self) -> str:
        return f"{self.prefix}:retries"

    def latency(self) -> str:
        return f"{self.prefix}:latency"

    def repairs(self) -> str:
        return f"{self.prefix}:repairs"

    def followups(self) -> str:
        return f"{self.prefix}:followups"

    # The audit trail: apart from the batches, so deleting one leaves its records.
    def audit(self) -> str:
        return f"{self.prefix}:audit"

    # Standing policies.
    def policy(self, policy_id: str) -> str:
        return f"{self.prefix}:policy:{policy_id}"

    def policy_runs(self, policy_id: str) -> str:
        return f"{self.prefix}:policy:{policy_id}:runs"

    def policy_retirements(self, policy_id: str) -> str:
        return f"{self.prefix}:policy:{policy_id}:retired"

    def policies(self) -> str:
        return f"{self.prefix}:policies"

    def policies_due(self) -> str:
        return f"{self.prefix}:policies:due"

    @staticmethod
    def broker_queue_lists(queue: str) -> list[str]:
        """The lists kombu keeps one queue's messages in (the queue itself and its priority steps)."""
        return [queue + suffix for suffix in _PRIORITY_SUFFIXES]
