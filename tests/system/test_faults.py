"""Faults at the back: camera, disk and database go wrong; users see why, nothing is lost, all recovers."""

import sqlite3
import threading
import time

import numpy as np
import pytest
from driver import register_kiosk
from sqlalchemy import event

from facelogin.engine import camera
from facelogin.services import enrolment as enroll
from facelogin.services import storage
from media import write_video
from models import db


@pytest.fixture
def slow_frames(monkeypatch):
    """Make every camera read take `delay` seconds, as a stalled stream would."""
    state = {"delay": 0.0}
    real_read = camera.Camera._read

    def read(self):
        time.sleep(state["delay"])
        return real_read(self)

    monkeypatch.setattr(camera.Camera, "_read", read)
    return state


def test_camera_that_vanishes_mid_burst(app, kiosk, photos, media, monkeypatch):
    kiosk.register("grace", photos["grace"])
    kiosk.look(media["grace_video"])
    real_read, calls = camera.Camera._read, []

    def unplugged_after_one(self):
        calls.append(1)
        return real_read(self) if len(calls) == 1 else None

    monkeypatch.setattr(camera.Camera, "_read", unplugged_after_one)
    response = kiosk.face_login()  # one frame is not a consensus
    assert response.status_code == 401 and b"Face not recognised" in response.data
    assert camera.get_camera(media["grace_video"])._capture is None  # released, to reopen next time
    monkeypatch.undo()  # plugged back in: works without a restart
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_only_black_frames(kiosk, photos, tmp_path):
    kiosk.register("grace", photos["grace"])
    kiosk.look(write_video(tmp_path / "black.avi", [np.zeros((480, 640, 3), np.uint8)] * 5))
    response = kiosk.face_login()
    assert response.status_code == 401 and b"too dark" in response.data


def test_source_slower_than_the_timeout(app, kiosk, photos, slow_frames):
    kiosk.register("grace", photos["grace"])
    app.config["CAMERA_TIMEOUT"] = 0.3
    slow_frames["delay"] = 0.5
    response = kiosk.face_login()
    assert response.status_code == 503 and b"did not answer in time" in response.data
    slow_frames["delay"] = 0.0
    app.config["CAMERA_TIMEOUT"] = 10
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_two_logins_at_once_never_share_the_camera(app, kiosk, photos, monkeypatch):
    kiosk.register("grace", photos["grace"])
    app.config.update(CAMERA_TIMEOUT=0.6, CAMERA_FRAMES=3)
    real_read, readers, most = camera.Camera._read, [0], [0]

    def watched_read(self):
        readers[0] += 1
        most[0] = max(most[0], readers[0])
        time.sleep(0.15)  # a slow camera keeps the window for overlap open
        try:
            return real_read(self)
        finally:
            readers[0] -= 1

    monkeypatch.setattr(camera.Camera, "_read", watched_read)
    results, start = [], threading.Barrier(2)

    clients = [app.test_client() for _ in range(2)]
    for client in clients:
        register_kiosk(app, client)

    def press(client):
        start.wait()
        response = client.post("/login")
        results.append((response.status_code, response.get_data(as_text=True)))

    threads = [threading.Thread(target=press, args=(client,)) for client in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] == 1  # never two readers on the device at once
    assert len(results) == 2 and 302 in [status for status, _ in results]
    for status, page in results:  # the second one waited its turn, or was told the camera is busy
        assert status == 302 or (status == 503 and "Camera busy" in page)


def test_known_faces_not_writable(kiosk, photos, monkeypatch, stored_files, user_count):
    real_write = storage.write_atomically

    def denied(path, data):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(storage, "write_atomically", denied)
    response = kiosk.register("grace", photos["grace"])
    assert response.status_code == 503 and b"could not save your registration" in response.data
    assert user_count() == 0 and stored_files() == []
    monkeypatch.setattr(storage, "write_atomically", real_write)
    assert kiosk.register("grace", photos["grace"]).status_code == 302


def test_uploads_folder_full(kiosk, photos, monkeypatch, stored_files, user_count):
    def disk_full(photo):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(enroll, "_stage_upload", disk_full)
    response = kiosk.register("grace", photos["grace"])
    assert response.status_code == 503 and b"could not save your registration" in response.data
    assert user_count() == 0 and stored_files() == []
    monkeypatch.undo()
    assert kiosk.register("grace", photos["grace"]).status_code == 302


@pytest.fixture
def quick_lock_app(make_app):
    """An app that gives up on a locked SQLite database after 0.2 s instead of 5 s."""
    app = make_app(SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 0.2}})
    with app.app_context():
        db.create_all()
    return app


@pytest.mark.parametrize("lock", ["EXCLUSIVE", "IMMEDIATE"])
def test_database_locked_by_another_connection(quick_lock_app, photos, tmp_path, lock, stored_files):
    from driver import Kiosk

    kiosk = Kiosk(quick_lock_app, quick_lock_app.test_client())
    other = sqlite3.connect(tmp_path / "test.sqlite", isolation_level=None)
    other.execute(f"BEGIN {lock}")
    try:
        response = kiosk.register("grace", photos["grace"])
        assert response.status_code == 503 and b"try again in a moment" in response.data
        assert kiosk.client.get("/").status_code == 200  # still serving
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert [p for p in stored_files() if "known_faces" in p] == []
    assert kiosk.register("grace", photos["grace"]).status_code == 302  # no restart needed
    assert kiosk.password_login("grace", "correct horse").status_code == 302


def test_database_read_only(app, kiosk, photos, stored_files, user_count):
    def read_only(dbapi_connection, record):
        dbapi_connection.execute("PRAGMA query_only = ON")

    with app.app_context():
        engine = db.engine
    event.listen(engine, "connect", read_only)
    engine.dispose()  # new connections pick the setting up
    try:
        response = kiosk.register("grace", photos["grace"])
        assert response.status_code == 503 and b"try again" in response.data
    finally:
        event.remove(engine, "connect", read_only)
        engine.dispose()
    assert user_count() == 0 and stored_files() == []
    assert kiosk.register("grace", photos["grace"]).status_code == 302
