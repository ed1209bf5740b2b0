"""A throwaway PostgreSQL server for the tests: a new cluster in a temporary folder on 127.0.0.1.

Debian's server binaries live in /usr/lib/postgresql/<version>/bin (`make postgres-deps`
installs them). PostgreSQL refuses to run as root, so under root the cluster belongs
to the `postgres` account that Debian's package creates.
"""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid

import psycopg


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started on this machine; the message says why."""


def bin_dir():
    """Return the newest folder holding initdb and pg_ctl, or None."""

    def version(path):
        name = path.split("/")[-2]
        return int(name) if name.isdigit() else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(os.path.dirname(os.path.realpath(on_path)))
    for folder in candidates:
        if all(os.access(os.path.join(folder, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return folder
    return None


def _free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One server process over a new data folder; `url` is its admin URL once started."""

    def __init__(self):
        """Find the binaries and the account to run them as, or raise Unavailable."""
        self.bin = bin_dir()
        if self.bin is None:
            raise Unavailable(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); run `make postgres-deps` as root"
            )
        self.account = None
        if os.geteuid() == 0:
            try:
                self.account = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no `postgres` account to own the cluster") from None
        self.folder = self.url = None

    def _run(self, *args):
        """Run a server tool as the cluster's owner; raise Unavailable with its output if it fails."""
        owner = (
            {}
            if self.account is None
            else {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        )
        result = subprocess.run(
            [os.path.join(self.bin, args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.folder,
            **owner,
        )
        if result.returncode:
            raise Unavailable(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def start(self):
        """Create and start the cluster; return its admin URL (psycopg form)."""
        self.folder = tempfile.mkdtemp(prefix="kiosk-pg-")
        if self.account is not None:
            os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
        password = secrets.token_hex(16)
        pwfile = os.path.join(self.folder, "pw")
        with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(password)
        if self.account is not None:
            os.chown(pwfile, self.account.pw_uid, self.account.pw_gid)
        data = os.path.join(self.folder, "data")
        self._run(
            "initdb",
            "-D",
            data,
            "-U",
            "kiosk",
            "--pwfile",
            pwfile,
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale",
            "C",
        )
        port = _free_port()
        # A test server: durability off for speed, TCP on loopback only, socket in our folder.
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", data, "-l", os.path.join(self.folder, "log"), "-w", "-t", "30", "-o", options, "start"
        )
        self.url = f"postgresql+psycopg://kiosk:{password}@127.0.0.1:{port}/postgres"
        return self.url

    def stop(self):
        """Stop the server at once and delete its folder."""
        if self.folder is None:
            return
        try:
            self._run("pg_ctl", "-D", os.path.join(self.folder, "data"), "-m", "immediate", "-w", "stop")
        except Unavailable:
            pass  # it never started, or it is already gone
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


def _admin(url):
    """Open an autocommit psycopg connection to the server behind a SQLAlchemy URL."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def create_database(admin_url):
    """Create an empty database on the server and return its SQLAlchemy URL."""
    name = f"kiosk_test_{uuid.uuid4().hex[:12]}"
    with _admin(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url):
    """Drop a database made by create_database, closing any connection still open to it."""
    base, name = url.rsplit("/", 1)
    with _admin(base + "/postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
