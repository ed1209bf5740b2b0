"""The files the app keeps: enrolled face photos, kiosk photos awaiting confirmation, attempt snapshots.

Every folder the app makes is 0700 and every file it writes 0600, whatever the umask: they
hold faces, password hashes and the secret key, which no other user of the machine may read.
"""

import contextlib
import os
import stat
import threading
import time
import uuid

from flask import abort, current_app, send_file
from sqlalchemy.engine import make_url

PRIVATE_FOLDER, PRIVATE_FILE = 0o700, 0o600
SQLITE_SIDE_FILES = ("", "-journal", "-wal", "-shm")


def known_face_path(user_id):
    """Return the path of a user's enrolled face photo."""
    return os.path.join(current_app.config["KNOWN_FACES_FOLDER"], f"{int(user_id)}.jpg")


def has_face_photo(user):
    """Return True if `user` has an enrolled face photo on disk."""
    return os.path.isfile(known_face_path(user.id))


def send_face_photo(user_id):
    """Answer with a user's enrolled face photo (never cached), or 404 if there is none."""
    path = known_face_path(user_id)
    if not os.path.isfile(path):
        abort(404)
    return send_file(path, mimetype="image/jpeg", max_age=0)


def send_private(path):
    """Answer with the JPEG at `path`, never kept by the browser, or 404 if `path` is None or missing."""
    if path is None or not os.path.isfile(path):
        abort(404)
    response = send_file(path, mimetype="image/jpeg", max_age=0)
    response.headers["Cache-Control"] = "no-store"  # a face: not for the browser's cache, nor the next person
    return response


def make_folder(path):
    """Create folder `path` (and its parents) if needed; the folder itself is 0700."""
    os.makedirs(path, mode=PRIVATE_FOLDER, exist_ok=True)
    os.chmod(path, PRIVATE_FOLDER)  # makedirs leaves an existing folder as it is, and obeys the umask


def folder(name):
    """Return UPLOAD_FOLDER/<name>, created 0700 if needed."""
    path = os.path.join(current_app.config["UPLOAD_FOLDER"], name)
    if not os.path.isdir(path):
        make_folder(path)
    return path


def create_private(path):
    """Open a new file `path`, 0600, for writing bytes (FileExistsError if it is there already)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # the umask can only take bits away, never add them: set them exactly
    return os.fdopen(fd, "wb")


def write_atomically(path, data):
    """Write bytes to a 0600 `path` through a temporary file, so a reader never sees half a file."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with create_private(tmp) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove(path):
    """Delete a file if it exists."""
    if path:
        with contextlib.suppress(FileNotFoundError):  # another thread or process removed it first
            os.remove(path)


def delete_older_than(path, seconds, now=None):
    """Delete the files in folder `path` last written more than `seconds` ago; return the mtime of the oldest kept."""
    now = time.time() if now is None else now
    oldest = None
    for entry in os.scandir(path):
        with contextlib.suppress(FileNotFoundError):
            if not entry.is_file():
                continue
            written = entry.stat().st_mtime
            if written < now - seconds:
                remove(entry.path)
            else:
                oldest = written if oldest is None else min(oldest, written)
    return oldest


# One timer thread per folder, running only while the folder holds files: a kiosk that
# nobody uses sends no requests, so a prune run by requests could keep a photo for days.
_sweepers = {}
_sweepers_lock = threading.Lock()


def sweep_later(path, seconds, delay=None):
    """Delete the files of folder `path` once they are `seconds` old, from a daemon timer (one per folder)."""
    with _sweepers_lock:
        if path in _sweepers:
            return  # the running timer reschedules itself for every file it finds
        timer = threading.Timer(seconds if delay is None else delay, _sweep, (path, seconds))
        timer.daemon = True
        _sweepers[path] = timer
    timer.start()


def _sweep(path, seconds):
    """Run by the timer: prune `path`, then wait for the next file to expire, if any remains."""
    with _sweepers_lock:
        _sweepers.pop(path, None)
    try:
        oldest = delete_older_than(path, seconds)
    except OSError:
        return  # the folder is gone: nothing left to prune
    if oldest is not None:
        sweep_later(path, seconds, max(0.0, oldest + seconds - time.time()) + 1)


# --- at start-up ------------------------------------------------------------------------------


def sqlite_file(uri, instance_path):
    """Return the path of the SQLite database file named by `uri`, or None for other databases."""
    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.query.get("uri"):
        return None
    # Flask-SQLAlchemy reads a relative SQLite path as relative to the instance folder.
    return os.path.join(instance_path, url.database)


def _tighten(path, mode):
    """chmod `path` to `mode` if other users may use it; return 1 if it was changed, else 0."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return 0  # removed meanwhile (another process pruning)
    if stat.S_ISLNK(status.st_mode) or status.st_mode & 0o077 == 0:
        return 0  # a symbolic link (never made by the app) could point anywhere: leave it
    os.chmod(path, mode)
    return 1


def _tighten_tree(top):
    """Make `top` and every folder under it 0700 and every file 0600; return how many were changed."""
    changed = _tighten(top, PRIVATE_FOLDER) if not os.path.islink(top) else 0
    for root, folders, files in os.walk(top):
        changed += sum(_tighten(os.path.join(root, name), PRIVATE_FOLDER) for name in folders)
        changed += sum(_tighten(os.path.join(root, name), PRIVATE_FILE) for name in files)
    return changed


def init_app(app):
    """Create the app's folders 0700 and its SQLite file 0600; tighten any left open to other users."""
    cfg = app.config
    for top in (app.instance_path, cfg["UPLOAD_FOLDER"], cfg["KNOWN_FACES_FOLDER"]):
        os.makedirs(top, mode=PRIVATE_FOLDER, exist_ok=True)
        if changed := _tighten_tree(top):
            app.logger.warning(
                "made %d files or folders in %s private (0600/0700): other users could read them", changed, top
            )
    database = sqlite_file(cfg["SQLALCHEMY_DATABASE_URI"], app.instance_path)
    if database is not None and os.path.isdir(os.path.dirname(database)):
        # SQLite makes a new database 0644 less the umask, and gives its journal and WAL
        # files the database's mode: created 0600 before SQLAlchemy connects, all stay private.
        with contextlib.suppress(FileExistsError):
            create_private(database).close()
        sides = [database + side for side in SQLITE_SIDE_FILES if os.path.exists(database + side)]
        if sum(_tighten(path, PRIVATE_FILE) for path in sides):
            app.logger.warning("made the database %s private (0600): other users could read it", database)
