"""Production serving: serve.py (waitress) in a subprocess answers a short loopback load test and keeps its limits."""

import signal
import socket
import sqlite3

import pytest

import serve
from bench import load

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """serve.py on a prepared site, closing idle connections after 1 s; yield (process, port)."""
    env = load.prepare_site(str(tmp_path_factory.mktemp("served")), SERVE_CHANNEL_TIMEOUT=1)
    process, port = load.start_server(env)
    yield process, port
    load.stop_server(process)


def resident_mib(pid):
    """Return the resident memory of process `pid` in MiB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def post_headers(port, length):
    """Send only the headers of a registration with Content-Length `length`; return the first answer bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(
            b"POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: %d\r\n\r\n" % length
        )
        try:
            return s.recv(65536)
        except TimeoutError:
            return b"(no answer while the server waits for the body)"


def test_a_body_over_max_content_length_is_refused_from_its_header(served):
    process, port = served
    before = resident_mib(process.pid)
    answer = post_headers(port, 300 * MIB)  # not one byte of the body is sent
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert resident_mib(process.pid) - before < 30
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # the limit itself reaches Flask
        s.sendall(b"POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % (10 * MIB))
        s.sendall(b"x" * (10 * MIB))
        assert s.recv(65536).startswith(b"HTTP/1.1 400 ")  # no CSRF token: the app, not waitress, answered


def test_unfinished_headers_neither_block_the_server_nor_stay_open(served):
    _, port = served
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(150)]
    for s in slow:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line that ends them
    assert load.home_seconds(port) < 1.0
    for s in slow:  # closed once idle for SERVE_CHANNEL_TIMEOUT (1 s here), checked every second
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert load.home_seconds(port) < 1.0


def test_waitress_serves_pages_and_both_logins(tmp_path):
    env = load.prepare_site(str(tmp_path), PASSWORD_HASH_METHOD="scrypt:1024:8:1")
    process, port = load.start_server(env, threads=4)
    try:
        client = load.Client("127.0.0.1", port, env["KIOSK_DEVICE"])
        status, response, _ = client.request("GET", "/")
        assert status == 200 and response.getheader("Server") == "kiosk"
        assert "default-src 'self'" in response.getheader("Content-Security-Policy")
        form = {"username": load.USERNAME, "password": load.PASSWORD}
        assert client.request("POST", "/login/password", form)[0] == 400  # no CSRF token
        client.close()
        for scenario, expected in load.EXPECTED.items():
            latencies, statuses, _ = load.run_load(
                "127.0.0.1", port, scenario, clients=3, duration=1.0, device=env["KIOSK_DEVICE"]
            )
            assert dict(statuses) == {expected: len(latencies)} and latencies, scenario
    finally:
        returncode = load.stop_server(process)
    assert returncode in (0, -signal.SIGTERM)  # it stopped when asked, not killed after the grace time


def test_load_client_targets_this_machine_only():
    with pytest.raises(ValueError):
        load.Client("192.0.2.1", 80)


def test_live_views_cannot_take_every_worker(app):
    with pytest.raises(ValueError, match="more than STREAM_LIMIT"):
        serve.limits(app.config, threads=2)
    assert serve.limits(app.config, threads=3)["max_request_body_size"] == app.config["MAX_CONTENT_LENGTH"] + 1


def test_forwarded_address_is_checked_behind_a_trusted_proxy(tmp_path):
    env = load.prepare_site(str(tmp_path), PASSWORD_HASH_METHOD="scrypt:1024:8:1")
    process, port = load.start_server(env, threads=4, options=["--trusted-proxy", "127.0.0.1"])
    try:
        client = load.Client("127.0.0.1", port)
        form = {"csrf_token": client.token(), "username": load.USERNAME, "password": "wrong horse"}
        for bad in ("<script>alert(1)</script>", "a" * 300, "198.51.100.20, not-an-address"):
            status, _, page = client.request("POST", "/login/password", form, headers={"X-Forwarded-For": bad})
            assert status == 400 and b"Bad forwarded address" in page, bad
        forwarded = {"X-Forwarded-For": "198.51.100.20, 203.0.113.9"}  # the proxy appended the last one
        assert client.request("POST", "/login/password", form, headers=forwarded)[0] == 401
        assert client.request("GET", "/")[0] == 200  # the server keeps answering
        client.close()
    finally:
        load.stop_server(process)
    with sqlite3.connect(tmp_path / "site.sqlite") as database:
        assert database.execute("SELECT client_addr FROM login_attempts").fetchall() == [("203.0.113.9",)]
