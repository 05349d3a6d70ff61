"""Which master the Sentinels name when they disagree: the newest configuration among a majority, not the first
Sentinel's word. The Sentinels here are stand-ins answering SENTINEL MASTERS; the real ones are in test_sentinel.py."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.sentinel import MasterNotFoundError, Sentinel

from worker.data.connection import MasterDown, newest_master


class _Node:
    def __init__(self, name: str, master: tuple[str, int] | None = None, epoch: int = 0, down: bool = False):
        self.name, self.master, self.epoch, self.down = name, master, epoch, down
        self.asked = 0

    def sentinel_masters(self) -> dict[str, Any]:
        self.asked += 1
        if self.down:
            raise RedisConnectionError(f"{self.name} does not answer")
        if self.master is None:
            return {}
        ip, port = self.master
        state = {"ip": ip, "port": port, "config-epoch": self.epoch, "num-other-sentinels": 2}
        return {"m": {**state, "is_master": True, "is_sdown": False, "is_odown": False}}


def _sentinel(*nodes: _Node) -> Sentinel:
    sentinel = Sentinel([])
    sentinel.sentinels = list(nodes)
    return sentinel


def test_the_newest_configuration_wins_over_the_first_sentinels_word() -> None:
    stale = _Node("s1", ("10.0.0.1", 6379), epoch=3)  # has not heard of the failover yet
    told = _Node("s2", ("10.0.0.2", 6379), epoch=4)
    assert newest_master(_sentinel(stale, told, _Node("s3", ("10.0.0.2", 6379), 4)), "m") == ("10.0.0.2", 6379)


def test_every_sentinel_is_asked_and_a_stale_majority_loses_to_the_newest() -> None:
    told = _Node("s3", ("10.0.0.9", 6379), epoch=9)
    stale = (_Node("s1", ("a", 1), 1), _Node("s2", ("a", 1), 1))  # voted, but not yet heard the new configuration
    assert newest_master(_sentinel(*stale, told), "m") == ("10.0.0.9", 6379)


def test_none_naming_a_master_is_down_for_a_majority_and_unknown_for_fewer() -> None:
    with pytest.raises(MasterDown):
        newest_master(_sentinel(_Node("s1"), _Node("s2"), _Node("s3", down=True)), "m")
    with pytest.raises(MasterNotFoundError) as unknown:
        newest_master(_sentinel(_Node("s1"), _Node("s2", down=True), _Node("s3", down=True)), "m")
    assert not isinstance(unknown.value, MasterDown)


def test_a_sentinel_that_does_not_answer_is_left_out_while_a_majority_answers() -> None:
    dead, s2, s3 = _Node("s1", down=True), _Node("s2", ("a", 1), 2), _Node("s3", ("a", 1), 2)
    sentinel = _sentinel(dead, s2, s3)
    assert newest_master(sentinel, "m") == ("a", 1)
    assert newest_master(sentinel, "m") == ("a", 1) and dead.asked == 1  # not asked again for a while
    s3.down = True  # now it is needed again: asked, though it failed a moment ago
    assert newest_master(sentinel, "m") == ("a", 1) and dead.asked == 2
