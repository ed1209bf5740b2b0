"""Rate limits claimed in the database: slots, windows, giving back, and the process-wide slots."""

import threading

import pytest

from facelogin.services import throttle


def test_claims_up_to_the_limit_then_says_how_long_to_wait(app, clock):
    with app.app_context():
        assert [throttle.claim("face:10.0.0.1", 3, 60) for _ in range(3)] == [0, 0, 0]
        assert throttle.claim("face:10.0.0.1", 3, 60) == 60
        clock.advance(45)
        assert throttle.claim("face:10.0.0.1", 3, 60) == 15
        assert throttle.claim("face:10.0.0.2", 3, 60) == 0  # each key has its own slots
        clock.advance(15)  # the window is over: a new one starts with this claim
        assert throttle.claim("face:10.0.0.1", 3, 60) == 0


def test_a_released_slot_can_be_claimed_again(app, clock):
    with app.app_context():
        assert throttle.claim("password:*", 1, 60) == 0
        assert throttle.claim("password:*", 1, 60) > 0
        throttle.release("password:*")
        assert throttle.claim("password:*", 1, 60) == 0
        throttle.release("password:*")
        throttle.release("password:*")  # never below zero: one slot, not two
        assert throttle.claim("password:*", 1, 60) == 0
        assert throttle.claim("password:*", 1, 60) > 0


def test_parallel_claims_never_pass_the_limit(app, clock):
    # Threads with their own sessions claim at once: exactly `limit` get a slot.
    results, start = [], threading.Barrier(12)

    def claim():
        with app.app_context():
            start.wait()
            results.append(throttle.claim("face:10.0.0.9", 5, 60))

    threads = [threading.Thread(target=claim) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[:5] == [0] * 5 and all(r > 0 for r in sorted(results)[5:])


def test_slots_refuse_when_none_frees_up():
    slots = throttle.Slots(1)
    with slots.hold(0.01):
        with pytest.raises(throttle.Busy), slots.hold(0.01):
            pass
    with slots.hold(0.01):  # given back when the first holder left
        pass


def test_slots_queue_only_as_many_callers_as_there_are_slots():
    slots, release, held, outcomes = throttle.Slots(1), threading.Event(), threading.Event(), []

    def holder():
        with slots.hold(1):
            held.set()
            release.wait(5)

    def waiter():
        try:
            with slots.hold(5):
                outcomes.append("served")
        except throttle.Busy:
            outcomes.append("busy")

    first = threading.Thread(target=holder)
    first.start()
    held.wait(5)
    queued = threading.Thread(target=waiter)
    queued.start()
    while slots._queue._value:  # the queued caller has taken the one place in the queue
        threading.Event().wait(0.01)
    waiter()  # no place left: refused at once, not queued
    release.set()
    for t in (first, queued):
        t.join()
    assert outcomes == ["busy", "served"]
