"""Rate limits claimed in the database: slots, windows, giving back, and the process-wide slots."""

import threading

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


def test_parallel_first_claims_of_a_new_key_are_all_granted_under_the_limit(app, clock):
    # Racing to create the key's row, the losers used to read the new row and answer "limited".
    for round_ in range(5):
        results, start = [], threading.Barrier(8)

        def claim(key=f"password:10.0.1.{round_}"):
            with app.app_context():
                start.wait()
                results.append(throttle.claim(key, 100, 60))

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [0] * 8, results
