"""Load test of the production server on loopback: requests per second and latency percentiles.

Starts serve.py (waitress) on 127.0.0.1 on a new SQLite database with Grace Hopper
registered, the camera a 30 fps file of her photo, then for each scenario runs CLIENTS
concurrent clients for DURATION seconds: the home page, the password login (production
scrypt hashing) and the face login (server camera: burst and decision). Then the same
face login with the kiosk browser's camera (CAMERA_MODE=browser: each request posts
FRAMES JPEG frames) against one and against two waitress processes on one database.
Logins fetch the login page for a CSRF token first; only the POST is timed. The load
generator shares the machine's cores with the servers. Traffic goes to 127.0.0.1 only
and stops by itself.

    .venv/bin/python bench/load.py [--duration 6] [--clients 20] [--threads 8]
"""

import argparse
import collections
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
USERNAME, PASSWORD = "grace", "correct horse battery"
CSRF = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')
MAX_REQUESTS_PER_CLIENT = 100_000
FRAMES = 4  # frames a kiosk browser posts per face login


class Client:
    """One browser: a keep-alive connection and its session cookie."""

    def __init__(self, host, port, device=None):
        """Connect lazily to host:port, which must be a loopback address; `device`: a kiosk credential."""
        if host not in LOOPBACK:
            raise ValueError(f"load tests target this machine only, not {host}")
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.cookies = {"kiosk_device": device} if device else {}

    def request(self, method, path, form=None, files=(), headers=None):
        """Send one request (files: (field, filename, bytes)); return (status, response, body)."""
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if files:
            body, headers["Content-Type"] = multipart(form or {}, files)
        elif form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        for cookie in response.headers.get_all("Set-Cookie") or ():
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name] = value
        return response.status, response, data

    def token(self):
        """Start a new session and return the CSRF token of the login page."""
        self.cookies.pop("session", None)
        status, _, page = self.request("GET", "/login")
        match = CSRF.search(page)
        return match.group(1).decode() if match else ""

    def close(self):
        """Close the connection."""
        self.conn.close()


def home_seconds(port):
    """Return how long GET / took to answer 200 (infinity if it did not within 1 s)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    started = time.perf_counter()
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return time.perf_counter() - started if response.status == 200 else float("inf")
    except TimeoutError:
        return float("inf")
    finally:
        conn.close()


def multipart(form, files):
    """Return (body, content type) of a multipart/form-data request."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in form.items()
    ]
    for field, filename, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def browser_frames(count=FRAMES):
    """Return `count` JPEG frames of Grace, as the kiosk browser would post them."""
    import cv2
    import numpy as np

    from bench import common

    frame = common.camera_frame("grace")
    return [
        (
            "frame",
            f"frame{i}.jpg",
            cv2.imencode(
                ".jpg", np.clip(frame * (0.9 + 0.03 * i), 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85]
            )[1].tobytes(),
        )
        for i in range(count)
    ]


def scenario_step(client, scenario, frames=()):
    """Prepare (untimed) and return the timed request of one scenario as a no-argument function."""
    if scenario == "home":
        return lambda: client.request("GET", "/")
    token = client.token()
    if scenario == "password":
        form = {"csrf_token": token, "username": USERNAME, "password": PASSWORD}
        return lambda: client.request("POST", "/login/password", form)
    return lambda: client.request("POST", "/login", {"csrf_token": token}, frames)


def run_load(host, ports, scenario, clients, duration, frames=(), device=None):
    """Run `clients` threads of `scenario` for `duration` seconds, spread over `ports` (an int or a list).

    Returns (latencies in s, Counter of statuses, elapsed s).
    """
    ports = [ports] if isinstance(ports, int) else list(ports)
    latencies, statuses, lock = [], collections.Counter(), threading.Lock()
    deadline = time.monotonic() + duration

    def worker(port):
        client = Client(host, port, device)
        try:
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if time.monotonic() >= deadline:
                    break
                try:
                    step = scenario_step(client, scenario, frames)
                    start = time.perf_counter()
                    status, _, _ = step()
                    took = time.perf_counter() - start
                except (OSError, http.client.HTTPException) as e:
                    status, took = type(e).__name__, None
                    client.close()
                    client = Client(host, port, device)
                with lock:
                    statuses[status] += 1
                    if took is not None:
                        latencies.append(took)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(ports[i % len(ports)],)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses, time.monotonic() - start


def prepare_site(folder, **settings):
    """Create a migrated database with Grace registered, a kiosk and a camera clip; return the server's env.

    `settings` are extra app settings for the server (tests pass a cheap password hash). The
    credential of the registered kiosk is env["KIOSK_DEVICE"], for Client(device=...).
    """
    from app import create_app
    from bench import common

    video = common.write_video(f"{folder}/grace.avi", common.camera_frame("grace"))
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/site.sqlite",
        "UPLOAD_FOLDER": f"{folder}/uploads",
        "KNOWN_FACES_FOLDER": f"{folder}/known_faces",
        "CAMERA_SOURCE": video,
        "SECRET_KEY": "load-test",
        "FACE_RATE_LIMIT": 10**6,  # every client is 127.0.0.1: no per-address limit here
        # Throughput of recognition under load: the camera plays a still clip, which the
        # default head-movement challenge refuses; bench/login.py times the challenge.
        "LIVENESS": "off",
        **settings,
    }
    app = create_app({**config, "WTF_CSRF_ENABLED": False})
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with open(common.photo("grace"), "rb") as f:
        response = app.test_client().post(
            "/register",
            content_type="multipart/form-data",
            data={"username": USERNAME, "password": PASSWORD, "consent": "y", "photo": (f, "grace.jpg")},
        )
    assert response.status_code == 302, response.status
    with app.app_context():
        from facelogin.services import sessions

        code = sessions.add_device("load-test")
    device = app.test_client().get(f"/kiosks/enrol/{code}").headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    return {**os.environ, **{f"FLASK_{k}": str(v) for k, v in config.items()}, "KIOSK_DEVICE": device}


def start_server(env, threads=8, options=()):
    """Start serve.py on a free loopback port (with extra command-line `options`); return (process, port)."""
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "serve.py"), "--port", "0", "--threads", str(threads), *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"serve.py did not start: {line!r}")
    return process, int(match.group(1))


def stop_server(process):
    """Stop the server process started by start_server; return its exit code (None if it had to be killed)."""
    process.terminate()
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


EXPECTED = {"home": 200, "password": 302, "face": 302}


def table_row(name, latencies, statuses, elapsed, expected):
    """Return one row of the results table."""
    from bench import common

    ms = [x * 1000 for x in latencies] or [float("nan")]
    ok = statuses.get(expected, 0)
    return (
        name,
        f"{len(latencies) / elapsed:.1f}",
        f"{ok / elapsed:.1f}",
        f"{common.percentile(ms, 50):.0f}",
        f"{common.percentile(ms, 95):.0f}",
        f"{common.percentile(ms, 99):.0f}",
        f"{max(ms):.0f}",
        ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)),
    )


def main():
    """Run the scenarios and print the table."""
    from bench import common

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per scenario (default 6, 5 scenarios)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    args = parser.parse_args()
    common.header(f"Load test: waitress ({args.threads} threads) on 127.0.0.1, {args.clients} clients")
    folder = tempfile.mkdtemp(prefix="bench-load-")
    servers = []
    try:
        env = prepare_site(folder)
        servers.append(start_server(env, args.threads))
        port = servers[0][1]
        rows = []
        for scenario in ("home", "password", "face"):
            result = run_load("127.0.0.1", port, scenario, args.clients, args.duration, device=env["KIOSK_DEVICE"])
            rows.append(table_row(f"{scenario} (1 process)", *result, EXPECTED[scenario]))
            print(f"  {scenario}: done", file=sys.stderr)
        stop_server(servers.pop()[0])
        browser_env = {**env, "FLASK_CAMERA_MODE": "browser"}
        frames = browser_frames()
        for count in (1, 2):
            while len(servers) < count:
                servers.append(start_server(browser_env, args.threads))
            ports = [port for _, port in servers]
            result = run_load(
                "127.0.0.1", ports, "face", args.clients, args.duration, frames, device=env["KIOSK_DEVICE"]
            )
            rows.append(
                table_row(
                    f"face, browser camera ({count} process{'es' if count > 1 else ''})", *result, EXPECTED["face"]
                )
            )
            print(f"  browser face login on {count} process(es): done", file=sys.stderr)
        print(
            f"{args.duration:g} s per scenario, {args.clients} clients, waitress {args.threads} threads per "
            f"process; browser camera: {FRAMES} JPEG frames posted per login. Latency in ms of the timed request:"
        )
        common.table(rows, ["scenario", "requests/s", "successful/s", "p50", "p95", "p99", "max", "responses"])
        print("successful: home 200, password login 302 to /protected, face login 302 to /protected.")
    finally:
        for process, _ in servers:
            stop_server(process)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
