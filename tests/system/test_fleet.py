"""A fleet on one PostgreSQL database: processes hear each other's face changes, and enrolments never race."""

import json
import os
import subprocess
import sys
import threading

import pytest
from driver import Kiosk, register_kiosk
from sqlalchemy import text

from app import create_app
from bench import load
from facelogin.services import accounts, consent, enrolment
from facelogin.services.gallery import Gallery, get_gallery
from models import User, db

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEARD = 10.0  # seconds a test waits at most for a notification or a reconnection (they take milliseconds)


@pytest.fixture
def fleet(make_app, postgres_url):
    """Return a function making an app ("a process") on one new PostgreSQL database built by `flask db upgrade`."""
    apps = []

    def make():
        app = make_app(SQLALCHEMY_DATABASE_URI=postgres_url)
        if not apps:
            result = app.test_cli_runner().invoke(args=["db", "upgrade"])
            assert result.exit_code == 0, result.output
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["face_gallery"].close()
        with app.app_context():
            db.engine.dispose()


def kiosk_of(app, name):
    """Return a Kiosk driving `app` from a registered kiosk browser called `name`."""
    client = app.test_client()
    register_kiosk(app, client, name)
    return Kiosk(app, client)


def face_login_served(port, device):
    """Post one face login to a served process; return its status (302: logged in)."""
    client = load.Client("127.0.0.1", port, device)
    try:
        return client.request("POST", "/login", {"csrf_token": client.token()})[0]
    finally:
        client.close()


def test_served_processes_hear_deletions_and_enrolments_at_once(tmp_path, postgres_url, photos, monkeypatch):
    env = load.prepare_site(str(tmp_path), SQLALCHEMY_DATABASE_URI=postgres_url, PASSWORD_HASH_METHOD="scrypt:1024:8:1")
    servers = [load.start_server(env, threads=4) for _ in range(2)]
    for key, value in env.items():
        if key.startswith("FLASK_"):
            monkeypatch.setenv(key, value)
    here = create_app()  # a third process: this one, with the served ones' settings
    ports, device = [port for _, port in servers], env["KIOSK_DEVICE"]
    try:
        assert [face_login_served(port, device) for port in ports] == [302, 302]

        with here.app_context():
            accounts.delete_user(User.by_username(load.USERNAME))
        # No wait: the next login in every other process refuses her.
        assert [face_login_served(port, device) for port in ports] == [401, 401]

        with here.app_context(), open(photos["grace"], "rb") as f:
            enrolment.register_user("grace2", "correct horse battery", f.read(), agreed=consent.given("y"))
        # Her enrolment is heard as it commits; a login sent right after may at most be
        # a notification round trip ahead of it, which one more attempt covers.
        for port in ports:
            statuses = [face_login_served(port, device)]
            if statuses[0] != 302:
                statuses.append(face_login_served(port, device))
            assert statuses[-1] == 302, statuses
    finally:
        here.extensions["face_gallery"].close()
        with here.app_context():
            db.engine.dispose()
        for process, _ in servers:
            load.stop_server(process)


def test_a_face_reset_elsewhere_refuses_a_login_before_its_notification_is_heard(fleet, photos, monkeypatch):
    front, back = fleet(), fleet()
    front_kiosk, back_kiosk = kiosk_of(front, "front"), kiosk_of(back, "back")
    assert front_kiosk.register("grace", photos["grace"]).status_code == 302
    assert back_kiosk.face_login().headers["Location"] == "/protected"
    back_kiosk.client.post("/logout")
    # The back process hears nothing more: its index keeps Grace's templates.
    monkeypatch.setattr(back.extensions["face_gallery"], "notified", lambda payload: None)
    with front.app_context():
        accounts.reset_face(User.by_username("grace"))
    with back.app_context():
        assert len(get_gallery().index()) == 1
    # The login re-reads the matched user's stored templates, and there are none now.
    assert back_kiosk.face_login().status_code == 401


def test_a_listener_that_lost_its_connection_reconnects_and_reads_everyone(fleet, photos, monkeypatch):
    front, back = fleet(), fleet()
    back_kiosk = kiosk_of(back, "back")
    with back.app_context():
        gallery = get_gallery()
        assert len(gallery.index()) == 0 and gallery.listener.ready.is_set()
    listener, reconnecting, release = gallery.listener, threading.Event(), threading.Event()
    real_connect = listener.connect

    def held_connect():
        reconnecting.set()
        release.wait(HEARD)
        return real_connect()

    monkeypatch.setattr(listener, "connect", held_connect)
    with front.app_context():
        pid = listener.connection.info.backend_pid
        db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert reconnecting.wait(HEARD) and not listener.ready.is_set()
        # Committed while nobody listens in the back process: its notification is lost there.
        with open(photos["grace"], "rb") as f:
            enrolment.register_user("grace", "correct horse", f.read(), agreed=consent.given("y"))
    loads = []
    real_load = Gallery._load
    monkeypatch.setattr(
        Gallery, "_load", lambda self, since=None, ids=None: loads.append((since, ids)) or real_load(self, since, ids)
    )
    release.set()
    assert listener.ready.wait(HEARD) and listener.connections == 2
    assert back_kiosk.face_login().status_code == 302
    assert loads[0] == (None, None)  # the reconnection read everyone


def test_listening_processes_do_not_poll_the_users_table(fleet, photos, monkeypatch):
    front, back = fleet(), fleet()
    with back.app_context():
        assert len(get_gallery().index()) == 0
    monkeypatch.setattr(Gallery, "_current_signature", lambda self: pytest.fail("a listening gallery polled"))
    with front.app_context(), open(photos["grace"], "rb") as f:
        grace = enrolment.register_user("grace", "correct horse", f.read(), agreed=consent.given("y")).id
    with back.app_context():
        get_gallery().sync()  # wait for what was committed so far to be heard
        assert set(get_gallery().index().labels) == {grace}


# --- two processes enrolling one face at once ------------------------------------------------
# Each child registers the names it reads from stdin with the same photo. It stops just before
# the "is this face enrolled already?" check (right after hashing the password) until it reads
# "go", so that both reach the check together.
ENROLLER = r"""
import json, sys
from app import create_app
from facelogin.services import consent, enrolment
settings, photo = json.loads(sys.argv[1]), open(sys.argv[2], "rb").read()
app = create_app(settings)
real_hash = enrolment.hash_password

def hash_then_wait(password):
    hashed = real_hash(password)
    print("ready", flush=True)
    assert sys.stdin.readline() == "go\n"
    return hashed

enrolment.hash_password = hash_then_wait
for name in iter(sys.stdin.readline, ""):
    with app.app_context():
        try:
            enrolment.register_user(name.strip(), "correct horse", photo, agreed=consent.given("y"))
            print("enrolled", flush=True)
        except enrolment.EnrollError as e:
            print(e.reason or e.status, flush=True)
"""


def test_two_processes_enrolling_one_face_at_once_make_one_account(fleet, tmp_path, photos):
    app = fleet()
    settings = {key: app.config[key] for key in ("SQLALCHEMY_DATABASE_URI", "SECRET_KEY", "PASSWORD_HASH_METHOD")}
    children = []
    for i in range(2):
        folders = {"UPLOAD_FOLDER": str(tmp_path / f"up{i}"), "KNOWN_FACES_FOLDER": str(tmp_path / f"known{i}")}
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", ENROLLER, json.dumps(settings | folders), photos["grace"]],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for race in range(4):
            for i, child in enumerate(children):
                child.stdin.write(f"race{race}_{i}\n")
                child.stdin.flush()
            assert [child.stdout.readline() for child in children] == ["ready\n"] * 2
            for child in children:
                child.stdin.write("go\n")
                child.stdin.flush()
            outcomes = sorted(child.stdout.readline().strip() for child in children)
            with app.app_context():
                names = db.session.scalars(db.select(User.username)).all()
                assert outcomes == ["enrolled", "known_face"] and len(names) == 1, (race, outcomes, names)
                db.session.execute(db.delete(User))
                db.session.commit()
    finally:
        for child in children:
            child.stdin.close()
            child.wait(timeout=30)


def test_before_the_notifying_migration_the_processes_poll(fleet, photos):
    front = fleet()
    assert front.test_cli_runner().invoke(args=["db", "downgrade", "0008"]).exit_code == 0
    back = fleet()
    with back.app_context():
        assert len(get_gallery().index()) == 0 and not get_gallery().listener.ready.is_set()
    with front.app_context(), open(photos["grace"], "rb") as f:
        grace = enrolment.register_user("grace", "correct horse", f.read(), agreed=consent.given("y")).id
    with back.app_context():
        assert set(get_gallery().index().labels) == {grace}  # seen by polling the users table
