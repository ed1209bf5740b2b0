"""Production serving: serve.py (waitress) in a subprocess answers a short loopback load test."""

import signal
import sqlite3

import pytest

from bench import load


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


def test_forwarded_address_is_checked_behind_a_trusted_proxy(tmp_path):
    env = load.prepare_site(str(tmp_path), PASSWORD_HASH_METHOD="scrypt:1024:8:1")
    process, port = load.start_server(env, threads=2, options=["--trusted-proxy", "127.0.0.1"])
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
