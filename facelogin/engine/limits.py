"""Process-wide limits on heavy work: how many requests decode and analyse pictures at once.

Decoding a photo or a burst of posted camera frames needs memory in proportion to its
pixels, and the face engine runs one call at a time anyway: a threaded server that let
every thread do it at once grew by gigabytes and had no thread left for anyone else.
Heavy work holds one of `count` slots shared by the process; at most `count` more
requests wait for one, for at most `wait` seconds, and the rest are told at once
that the system is busy.
"""

import threading
from contextlib import contextmanager
from typing import NamedTuple

BUSY = "The system is busy - please try again in a moment"


class Busy(Exception):
    """No slot for heavy work came free in time; the request should be answered 503."""

    def __init__(self):
        super().__init__(BUSY)


class _Gate:
    """The process-wide count of holders and waiters for one setting of `count` slots."""

    def __init__(self, count):
        """Start with every slot free and nobody waiting."""
        self.count, self.running, self.waiting = count, 0, 0
        self.changed = threading.Condition()


_gates = {}
_gates_lock = threading.Lock()


def gate(count, kind="pictures"):
    """Return the process-wide gate of `count` slots for one kind of work (one per setting)."""
    with _gates_lock:
        return _gates.setdefault((kind, count), _Gate(count))


class Slots(NamedTuple):
    """At most `count` holders of one `kind` of work at once in this process, and `count` waiting `wait` s each."""

    count: int = 2
    wait: float = 5.0
    kind: str = "pictures"  # each kind has its own slots: pictures, password hashes

    @contextmanager
    def hold(self):
        """Hold one slot for the duration of the block, or raise Busy."""
        g = gate(self.count, self.kind)
        with g.changed:
            # Waiting requests keep their server thread: bound them too, or they take every thread.
            if g.running >= g.count and g.waiting >= g.count:
                raise Busy()
            g.waiting += 1
            try:
                if not g.changed.wait_for(lambda: g.running < g.count, timeout=self.wait):
                    raise Busy()
            finally:
                g.waiting -= 1
            g.running += 1
        try:
            yield
        finally:
            with g.changed:
                g.running -= 1
                g.changed.notify()
