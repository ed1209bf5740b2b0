"""Parallel attempts at the served app (waitress) never get more checks than a limit allows, on both databases."""

import threading
import time

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from bench import load

SCENARIOS = {
    # name: (source address, path, username, the most checks the limits allow, parallel requests)
    "wrong passwords for one account": ("127.0.0.2", "/login/password", "grace", 5, 40),  # LOCKOUT_AFTER
    "unknown usernames from one address": ("127.0.0.3", "/login/password", None, 10, 30),  # PASSWORD_RATE_LIMIT
    "faces claiming one account": ("127.0.0.4", "/login", "grace", 5, 24),  # LOCKOUT_AFTER
    "faces from one address": ("127.0.0.5", "/login", None, 10, 30),  # FACE_RATE_LIMIT
}


def client(port, address, device=None):
    """Return a load.Client whose connections come from `address` (any of 127.0.0.0/8 reaches loopback)."""
    c = load.Client("127.0.0.1", port, device)
    c.conn.source_address = (address, 0)
    return c


def fire(port, device, address, path, username, count):
    """Send `count` attempts at once, each from its own fresh session; return their statuses."""
    statuses, ready = [], threading.Barrier(count)

    def attempt(i):
        c = client(port, address, device)
        form = {"csrf_token": c.token(), "username": username or f"nobody{i}", "password": "wrong horse"}
        ready.wait()
        statuses.append(c.request("POST", path, form)[0])
        c.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """The database URL the served app uses: a SQLite file, or a new database on a throwaway PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/site.sqlite"
    return request.getfixturevalue("postgres_url")


def test_parallel_attempts_get_at_most_the_limit_checked(tmp_path, database):
    blank = str(tmp_path / "wall.png")  # the camera sees a wall: every face attempt is a failure
    cv2.imwrite(blank, np.full((480, 640, 3), 128, np.uint8))
    env = load.prepare_site(
        str(tmp_path),
        SQLALCHEMY_DATABASE_URI=database,
        PASSWORD_HASH_METHOD="scrypt:1024:8:1",
        LOGIN_MODE="username+face",
        FACE_RATE_LIMIT=10,
        CAMERA_FRAMES=2,
        # Every attempt reaches its claim at once (the picture and hashing slots would otherwise turn
        # most away as "busy" first).
        MAX_CONCURRENT_DECODES=40,
        PASSWORD_HASH_CONCURRENCY=40,
    )
    env["FLASK_CAMERA_SOURCE"] = blank
    process, port = load.start_server(env, threads=8)
    try:
        for name, (address, path, username, _limit, count) in SCENARIOS.items():
            statuses = fire(port, env["KIOSK_DEVICE"], address, path, username, count)
            assert set(statuses) <= {401, 429, 503} and 429 in statuses, (name, statuses)
    finally:
        load.stop_server(process)
    engine = sa.create_engine(database)
    with engine.connect() as db:
        for name, (address, *_, limit, _count) in SCENARIOS.items():
            outcomes = db.execute(
                sa.text("SELECT outcome FROM login_attempts WHERE client_addr = :a"), {"a": address}
            ).scalars()
            checked = [o for o in outcomes if o not in ("limited", "locked")]
            assert 1 <= len(checked) <= limit, (name, checked)
        counters = db.execute(sa.text("SELECT password_failures, face_failures FROM users")).one()
        assert tuple(counters) == (5, 5)  # the account's counters agree with the checks in the audit log
    engine.dispose()


def test_a_password_flood_leaves_the_site_answering(tmp_path):
    # The real scrypt cost (128 MiB, a core for a while per hash): 16 clients from one address
    # for a few seconds get at most PASSWORD_RATE_LIMIT hashes, and everyone else is served.
    env = load.prepare_site(str(tmp_path))
    process, port = load.start_server(env, threads=8)
    stop, flood_statuses = threading.Event(), []

    def flood(i):
        c = client(port, "127.0.0.1")
        form = {"csrf_token": c.token(), "username": f"nobody{i}", "password": "wrong horse"}
        while not stop.is_set():
            flood_statuses.append(c.request("POST", "/login/password", form)[0])
        c.close()

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(16)]
    home, answers = client(port, "127.0.0.9"), []
    try:
        assert home.request("GET", "/")[0] == 200  # a site already up, not one starting
        for t in threads:
            t.start()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert home.request("GET", "/")[0] == 200
            answers.append(time.monotonic() - started)
            time.sleep(0.2)
        person = client(port, "127.0.0.10")
        form = {"csrf_token": person.token(), "username": load.USERNAME, "password": load.PASSWORD}
        # A real login gets through: at once, or (on a loaded machine, while the flood's last allowed
        # hashes still hold the slots) after the "busy, try again in a moment" the page then shows.
        statuses = [person.request("POST", "/login/password", form)[0]]
        while statuses[-1] == 503 and len(statuses) < 10:
            time.sleep(1.0)
            statuses.append(person.request("POST", "/login/password", form)[0])
        assert statuses[-1] == 302 and set(statuses[:-1]) <= {503}, statuses
    finally:
        stop.set()
        for t in threads:
            t.join()
        load.stop_server(process)
    assert max(answers) < 1.0, answers
    assert flood_statuses.count(401) <= 10 and flood_statuses.count(429) > 0
