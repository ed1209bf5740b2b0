"""Production serving: serve.py (waitress) in a subprocess answers a short loopback load test."""

import signal

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
