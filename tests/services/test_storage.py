"""The app's files: folders 0700 and files 0600 whatever the umask, and open ones tightened at start."""

import logging
import os
import stat

import pytest
from driver import Kiosk, register_kiosk
from flask import Flask
from sqlalchemy import text

from models import db


@pytest.fixture
def umask_022():
    """Run the test under the common umask 022, with which plain writes are world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(top):
    """Return {path relative to `top`: permission bits} of everything under `top`."""
    found = {}
    for root, folders, files in os.walk(top):
        for name in folders + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, top)] = stat.S_IMODE(os.stat(path).st_mode)
    return found


def test_everything_the_app_writes_is_private(umask_022, make_app, photos, media, tmp_path, monkeypatch):
    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(tmp_path / "instance"))
    app = make_app(SAVE_FAILED_SNAPSHOTS=True, KEEP_UPLOADS=True, SECRET_KEY=None)  # a key made into instance/
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    kiosk = Kiosk(app, app.test_client())
    register_kiosk(app, kiosk.client)
    assert kiosk.register("grace", photos["grace"]).status_code == 302  # face photo and kept upload
    kiosk.client.post("/register/capture", data={"consent": "y"})  # a kiosk photo awaiting confirmation
    kiosk.look(media["luis_video"])
    assert kiosk.face_login().status_code == 401  # a refused face: a snapshot
    with app.app_context():  # WAL mode: SQLite makes its -wal and -shm files as it writes
        db.session.execute(text("PRAGMA journal_mode=WAL"))
        db.session.execute(text("UPDATE users SET last_login_at = NULL"))
        db.session.commit()
        written = _modes(tmp_path)
    kinds = {name.split(os.sep)[0] for name in written}
    assert {"instance", "uploads", "known_faces", "test.sqlite", "test.sqlite-wal", "test.sqlite-shm"} <= kinds
    assert {"uploads/captures", "uploads/attempts", "known_faces/1.jpg", "instance/secret_key"} <= set(written)
    assert any(name.endswith(".upload") for name in written)
    folders = {name for name in written if os.path.isdir(tmp_path / name)}
    assert {name: oct(mode) for name, mode in written.items() if mode != (0o700 if name in folders else 0o600)} == {}


def test_open_files_and_folders_are_tightened_at_start(umask_022, make_app, tmp_path, caplog):
    faces = tmp_path / "known_faces"
    faces.mkdir(mode=0o755)
    (faces / "1.jpg").write_bytes(b"a face")
    (tmp_path / "uploads" / "captures").mkdir(parents=True)
    (tmp_path / "test.sqlite").write_bytes(b"")
    (tmp_path / "test.sqlite-journal").write_bytes(b"")
    os.chmod(tmp_path / "test.sqlite", 0o644)
    assert stat.S_IMODE(os.stat(faces / "1.jpg").st_mode) == 0o644  # as the pen test found them
    with caplog.at_level(logging.WARNING):
        make_app()
    written = _modes(tmp_path)
    expected = {"known_faces": 0o700, "known_faces/1.jpg": 0o600, "uploads": 0o700, "uploads/captures": 0o700}
    expected |= {"test.sqlite": 0o600, "test.sqlite-journal": 0o600}
    assert {name: oct(written[name]) for name in expected} == {name: oct(mode) for name, mode in expected.items()}
    assert f"made 2 files or folders in {faces} private" in caplog.text
    assert f"made the database {tmp_path / 'test.sqlite'} private" in caplog.text
