"""Requests that decode pictures take turns: with every slot taken, the next hears "busy" (503) at once."""

import contextlib
import io
import threading
import time

import pytest
from driver import open_kiosk

from facelogin.engine import limits

SLOTS = 3  # a setting of its own, so that taking its slots here blocks no other test


@contextlib.contextmanager
def every_slot_taken():
    """Hold every slot in this thread, and fill every waiting place with a thread, until the block ends."""
    with contextlib.ExitStack() as held:
        for _ in range(SLOTS):
            held.enter_context(limits.Slots(SLOTS, wait=0).hold())
        waiting = [threading.Thread(target=_wait_for_a_slot) for _ in range(SLOTS)]
        for thread in waiting:
            thread.start()
        for _ in range(3000):  # until they all wait (bounded: 30 s at most)
            if limits.gate(SLOTS).waiting == SLOTS:
                break
            time.sleep(0.01)
        yield
    for thread in waiting:  # the slots are free again: each waiter takes one in turn and leaves
        thread.join(60)


def _wait_for_a_slot():
    """Wait for a slot as a request would, then give it back."""
    with limits.Slots(SLOTS, wait=60).hold():
        pass


def test_picture_posts_hear_busy_and_the_rest_of_the_site_answers(make_app, photos, stored_files):
    app = make_app(MAX_CONCURRENT_DECODES=SLOTS, CAMERA_MODE="browser")
    kiosk = open_kiosk(app)
    client = kiosk.client
    assert kiosk.register("grace", photos["grace"]).status_code == 302
    assert kiosk.password_login("grace", "correct horse").status_code == 302
    before = stored_files()
    photo = open(photos["luis"], "rb").read()
    posts = {
        "/register": {
            "username": "luis",
            "password": "correct horse",
            "consent": "y",
            "photo": (io.BytesIO(photo), "a.jpg"),
        },
        "/register/capture": {"consent": "y", "frame": (io.BytesIO(photo), "f.jpg")},
        "/protected/faces": {"photo": (io.BytesIO(photo), "a.jpg")},
        "/login": {"frame": (io.BytesIO(photo), "f.jpg")},
    }
    with every_slot_taken():
        for path, form in posts.items():
            response = client.post(path, data=form, content_type="multipart/form-data")
            assert response.status_code == 503, path
            assert b"The system is busy - please try again in a moment" in response.data
        for path in ("/", "/register", "/login", "/protected"):
            assert client.get(path).status_code == 200, path
    assert stored_files() == before  # nothing kept of the refused pictures
    # Free again: the same photo registers.
    response = client.post("/register", data=posts["/register"] | {"photo": (io.BytesIO(photo), "a.jpg")})
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_CONCURRENT_DECODES", 0),
        ("MAX_CONCURRENT_DECODES", "2"),
        ("DECODE_WAIT_SECONDS", 0),
        ("MAX_IMAGE_PIXELS", 0),
        ("PHOTO_WORK_PIXELS", 1.5),
    ],
)
def test_a_wrong_limit_stops_the_app_at_start(make_app, key, value):
    with pytest.raises(ValueError, match=key):
        make_app(**{key: value})
