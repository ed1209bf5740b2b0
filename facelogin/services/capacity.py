"""Capacity: the requests that decode and analyse pictures take turns, so memory and threads stay free for others."""

import functools

from flask import current_app, request

from facelogin.config import decode_slots


def heavy(view):
    """Run a POST to `view` holding one of the process's MAX_CONCURRENT_DECODES slots (limits.Busy: 503)."""

    @functools.wraps(view)
    def wrapped(**kwargs):
        if request.method != "POST":
            return view(**kwargs)
        with decode_slots(current_app.config).hold():
            return view(**kwargs)

    return wrapped
