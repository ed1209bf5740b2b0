"""Production server (`make serve`): waitress serving the app with a pool of threads in one process.

One process owns the kiosk camera: camera.get_camera keeps one capture per process and
a burst holds its lock, so a kiosk with a server-side camera runs exactly one of these.
A central site whose kiosks use their browser's camera (CAMERA_MODE=browser) can run
several, on several ports, behind a reverse proxy, sharing one PostgreSQL database.
Settings come from FLASK_* variables (FLASK_SQLALCHEMY_DATABASE_URI=postgresql+psycopg://...);
run `flask db upgrade` first, as `make serve` does.

Waitress's limits come from the app's settings, not waitress's defaults:
- a body larger than MAX_CONTENT_LENGTH is refused (413) from its Content-Length header, before
  any of it is read (waitress's own limit is 1 GiB, read whole before Flask sees the request);
- a connection idle or stalled for SERVE_CHANNEL_TIMEOUT seconds (20) is closed, checked every
  few seconds: unfinished headers or a stopped upload do not hold a connection for long;
- up to SERVE_CONNECTION_LIMIT connections (1000, not 100), watched with poll() (select() stops
  at descriptor 1023); the open-file limit is raised to fit them, or the limit lowered to what fits.
- --threads must exceed STREAM_LIMIT, so live camera views never hold every worker.

    .venv/bin/python serve.py [--host 127.0.0.1] [--port 8000] [--threads 8] [--trusted-proxy IP]
"""

import argparse
import resource

from waitress import create_server

from app import create_app
from facelogin.engine import faces

FDS_PER_CONNECTION = 3  # its socket, and a spill file each for a large request and a large response
FDS_SPARE = 64  # the database, the camera, the models and the logs


def fit_connection_limit(wanted):
    """Raise this process's open-file limit towards what `wanted` connections need; return how many fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted * FDS_PER_CONNECTION + FDS_SPARE
    if soft != resource.RLIM_INFINITY and soft < need:
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - FDS_SPARE) // FDS_PER_CONNECTION))


def limits(config, threads):
    """Return waitress's request and connection limits for an app with `config`."""
    if config["CAMERA_MODE"] == "server" and threads <= config["STREAM_LIMIT"]:
        raise ValueError(
            f"--threads must be more than STREAM_LIMIT ({config['STREAM_LIMIT']}): "
            "live camera views would hold every worker"
        )
    timeout = config["SERVE_CHANNEL_TIMEOUT"]
    adjustments = {
        "channel_timeout": timeout,
        "cleanup_interval": min(5, timeout),  # an idle connection is closed within timeout + this
        "connection_limit": fit_connection_limit(config["SERVE_CONNECTION_LIMIT"]),
        "asyncore_use_poll": True,
    }
    if config["MAX_CONTENT_LENGTH"]:
        # Waitress refuses a Content-Length of max_request_body_size or more; Flask allows up to its limit.
        adjustments["max_request_body_size"] = config["MAX_CONTENT_LENGTH"] + 1
    return adjustments


def build_server(app, host="127.0.0.1", port=8000, threads=8, trusted_proxy=None):
    """Return a waitress server for `app` (port 0: any free port, see server.effective_port)."""
    proxy = {}
    if trusted_proxy:
        # Behind a proxy: take the client's address from it, so that per-address
        # rate limits and the audit log see the kiosk, not the proxy.
        proxy = {
            "trusted_proxy": trusted_proxy,
            "trusted_proxy_count": 1,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
        }
    return create_server(
        app, host=host, port=port, threads=threads, ident="kiosk", **limits(app.config, threads), **proxy
    )


def main(argv=None):
    """Parse the options, then serve until stopped."""
    parser = argparse.ArgumentParser(description="Serve the kiosk app with waitress.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--trusted-proxy", help="address of a reverse proxy whose X-Forwarded-For to trust")
    args = parser.parse_args(argv)
    try:
        app = create_app()
        server = build_server(app, args.host, args.port, args.threads, args.trusted_proxy)
    except ValueError as e:
        parser.error(str(e))
    limit = server.adj.connection_limit
    print(f"Serving on http://{args.host}:{server.effective_port} with {args.threads} threads", flush=True)
    print(f"face engine: {faces.engine_build()}", flush=True)
    if limit < app.config["SERVE_CONNECTION_LIMIT"]:
        print(f"Open-file limit too low: up to {limit} connections (ulimit -n)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
