"""How far the cloud is: the first round trip, then a moving average that one slow call does not swing."""

from __future__ import annotations

from worker.ims.roundtrip import WEIGHT, RoundTrip


def test_the_first_round_trip_is_taken_as_it_is_then_each_moves_the_average_by_its_weight() -> None:
    far = RoundTrip()
    assert far.seconds == 0.0
    far.add(0.15)
    assert far.seconds == 0.15
    far.add(1.15)  # one slow answer
    assert abs(far.seconds - (0.15 + WEIGHT * 1.0)) < 1e-9 and far.seconds < 0.25
    for _ in range(200):
        far.add(0.002)  # the cloud moved near (a loopback simulator)
    assert far.seconds < 0.01
