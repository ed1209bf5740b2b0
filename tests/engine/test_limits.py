"""Slots for heavy work: `count` run, `count` wait a while, the rest hear "busy" at once."""

import threading
import time

import pytest

from facelogin.engine import limits

COUNT = 1  # a setting of its own: the apps of the other tests use the default 2


@pytest.fixture
def holder():
    """Hold the only slot in another thread; set the returned event to give it back."""
    inside, leave = threading.Event(), threading.Event()

    def hold():
        with limits.Slots(COUNT, wait=30).hold():
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(30)
    yield leave
    leave.set()
    thread.join(30)


def test_a_free_slot_is_taken_and_given_back():
    for _ in range(3):
        with limits.Slots(COUNT, wait=0).hold():
            assert limits.gate(COUNT).running == 1
    assert limits.gate(COUNT).running == 0


def test_a_request_that_waits_too_long_hears_busy(holder):
    with pytest.raises(limits.Busy, match="busy - please try again"):
        with limits.Slots(COUNT, wait=0.05).hold():
            pass
    assert limits.gate(COUNT).waiting == 0


def test_beyond_count_waiting_requests_are_refused_at_once(holder):
    got_in = []

    def wait_for_a_slot():
        with limits.Slots(COUNT, wait=30).hold():
            got_in.append(True)

    waiter = threading.Thread(target=wait_for_a_slot)
    waiter.start()
    for _ in range(3000):  # until the waiter waits (bounded: 30 s at most)
        if limits.gate(COUNT).waiting == 1:
            break
        time.sleep(0.01)
    # One holds the slot and one waits for it: a third is refused at once, however long it may wait.
    with pytest.raises(limits.Busy):
        with limits.Slots(COUNT, wait=30).hold():
            pass
    assert not got_in
    holder.set()  # the slot comes free: the waiter takes it
    waiter.join(30)
    assert got_in == [True] and limits.gate(COUNT).running == 0
