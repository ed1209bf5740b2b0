"""Rate limits claimed in the database before the check they guard, so parallel requests cannot overrun them.

A request takes a slot of its key in one UPDATE that succeeds only while the window
has room. One statement is atomic on both databases: SQLite runs one writer at a
time, and PostgreSQL re-checks the WHERE on the locked row after waiting for it.
Counting in the audit log at the end of a request instead let 17 of 30 parallel
attempts through a limit of 10. A success gives its slot back (`release`): the
limits count failures, so a kiosk queue logging in one after another never waits.
"""

import math
from datetime import timedelta

from sqlalchemy import case, or_
from sqlalchemy.exc import IntegrityError

from models import RateLimit, as_utc, db, utcnow

# Tests replace this to move time without sleeping.
clock = utcnow


def claim(key, limit, window):
    """Take one of `limit` slots of `key` per `window` seconds; return 0, or the seconds to wait."""
    for _ in range(10):  # a retry only follows a parallel change that left room
        now = clock()
        expired = RateLimit.window_start <= now - timedelta(seconds=window)
        taken = db.session.execute(
            db.update(RateLimit)
            .where(RateLimit.key == key, or_(expired, RateLimit.count < limit))
            .values(
                count=case((expired, 1), else_=RateLimit.count + 1),
                window_start=case((expired, now), else_=RateLimit.window_start),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if taken:
            return 0
        row = db.session.execute(db.select(RateLimit.count, RateLimit.window_start).where(RateLimit.key == key)).first()
        if row is not None:
            ends = as_utc(row.window_start) + timedelta(seconds=window)
            if row.count < limit or ends <= now:
                continue  # made (or emptied) by a parallel request since our UPDATE: claim in it
            return max(1, math.ceil((ends - now).total_seconds()))
        try:
            db.session.add(RateLimit(key=key, count=1, window_start=now))
            db.session.commit()
            return 0
        except IntegrityError:
            db.session.rollback()  # a parallel request made the row first: claim in it
    return 1


def release(key):
    """Give back a slot of `key` taken by an attempt that succeeded or was never checked."""
    db.session.execute(
        db.update(RateLimit)
        .where(RateLimit.key == key, RateLimit.count > 0)
        .values(count=RateLimit.count - 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
