"""Production server (`make serve`): waitress serving the app with a pool of threads in one process.

One process owns the kiosk camera: camera.get_camera keeps one capture per process and
a burst holds its lock, so a kiosk with a server-side camera runs exactly one of these.
A central site whose kiosks use their browser's camera (CAMERA_MODE=browser) can run
several, on several ports, behind a reverse proxy, sharing one PostgreSQL database.
Settings come from FLASK_* variables (FLASK_SQLALCHEMY_DATABASE_URI=postgresql+psycopg://...);
run `flask db upgrade` first, as `make serve` does.

    .venv/bin/python serve.py [--host 127.0.0.1] [--port 8000] [--threads 8] [--trusted-proxy IP]
"""

import argparse

from waitress import create_server

from app import create_app


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
    return create_server(app, host=host, port=port, threads=threads, ident="kiosk", **proxy)


def main(argv=None):
    """Parse the options, then serve until stopped."""
    parser = argparse.ArgumentParser(description="Serve the kiosk app with waitress.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--trusted-proxy", help="address of a reverse proxy whose X-Forwarded-For to trust")
    args = parser.parse_args(argv)
    server = build_server(create_app(), args.host, args.port, args.threads, args.trusted_proxy)
    print(f"Serving on http://{args.host}:{server.effective_port} with {args.threads} threads", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
