"""The live camera view under attack, served by serve.py (waitress) in a subprocess on 127.0.0.1."""

import http.client
import time

import pytest

from app import create_app
from bench import load

ADMIN, ADMIN_PASSWORD = "boss", "s3cret pass"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A prepared site (Grace, a kiosk, an admin), whose server each test starts with its own settings."""
    folder = str(tmp_path_factory.mktemp("stream"))
    env = load.prepare_site(folder, PASSWORD_HASH_METHOD="scrypt:1024:8:1")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": env["FLASK_SQLALCHEMY_DATABASE_URI"],
            "UPLOAD_FOLDER": env["FLASK_UPLOAD_FOLDER"],
            "KNOWN_FACES_FOLDER": env["FLASK_KNOWN_FACES_FOLDER"],
            "SECRET_KEY": "load-test",
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        }
    )
    result = app.test_cli_runner().invoke(args=["users", "create-admin", ADMIN], input=f"{ADMIN_PASSWORD}\n" * 2)
    assert result.exit_code == 0, result.output
    return env


@pytest.fixture
def serve(site):
    """Return a function starting the server with extra settings; stop it after the test."""
    started = []

    def start(**settings):
        process, port = load.start_server({**site, **{f"FLASK_{k}": str(v) for k, v in settings.items()}})
        started.append(process)
        return port

    yield start
    for process in started:
        load.stop_server(process)


def open_stream(port, cookie):
    """Ask for the live view with `cookie`; return the response (status and headers read)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/camera/stream", headers={"Cookie": cookie})
    return conn.getresponse()


def ends_within(view, seconds):
    """Read a view until it ends; return whether it ended within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not view.read1(65536):
            return view.isclosed()
    return False


def test_eight_streams_get_two_views_and_the_server_keeps_answering(site, serve):
    port = serve(STREAM_SECONDS=3)
    kiosk = f"kiosk_device={site['KIOSK_DEVICE']}"
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(8)]
    for conn in conns:  # all eight asked before any answer is read
        conn.request("GET", "/camera/stream", headers={"Cookie": kiosk})
    responses = [conn.getresponse() for conn in conns]
    assert sorted(r.status for r in responses) == [200] * 2 + [503] * 6
    views = [r for r in responses if r.status == 200]
    assert all(r.getheader("Content-Type").startswith("multipart/x-mixed-replace") for r in views)
    assert all(b"2 live camera views are open already" in r.read() for r in responses if r.status == 503)
    for _ in range(10):  # GET / answers while both views send frames
        assert load.home_seconds(port) < 1.0
        assert all(r.read1(65536) for r in views)
    assert all(ends_within(view, 10) for view in views)  # STREAM_SECONDS=3
    assert load.home_seconds(port) < 1.0
    assert open_stream(port, kiosk).status == 200  # their slots were given back


def test_a_closed_view_gives_its_slot_back(site, serve):
    port = serve()
    kiosk = f"kiosk_device={site['KIOSK_DEVICE']}"
    views = [open_stream(port, kiosk) for _ in range(2)]
    assert [r.status for r in views] == [200, 200] and all(r.read1(65536) for r in views)
    assert open_stream(port, kiosk).status == 503
    for view in views:
        view.close()  # the browser went away
    for _ in range(50):  # the server notices at its next write
        view = open_stream(port, kiosk)
        if view.status == 200:
            break
        view.read()
        time.sleep(0.1)
    assert view.status == 200


def test_an_admins_view_stops_when_the_admin_logs_out(serve):
    port = serve(STREAM_SECONDS=300)
    admin = load.Client("127.0.0.1", port)  # a remote admin: no kiosk credential
    form = {"csrf_token": admin.token(), "username": ADMIN, "password": ADMIN_PASSWORD}
    assert admin.request("POST", "/login/password", form)[0] == 302
    view = open_stream(port, f"session={admin.cookies['session']}")
    assert view.status == 200 and view.read1(65536)
    page = admin.request("GET", "/protected")[2]
    assert admin.request("POST", "/logout", {"csrf_token": load.CSRF.search(page).group(1).decode()})[0] == 302
    assert ends_within(view, 10)  # at its next frame, not after STREAM_SECONDS
    admin.close()
