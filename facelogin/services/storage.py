"""The files the app keeps: enrolled face photos, kiosk photos awaiting confirmation, attempt snapshots."""

import os
import time
import uuid

from flask import abort, current_app, send_file


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


def folder(name):
    """Return UPLOAD_FOLDER/<name>, created if needed."""
    path = os.path.join(current_app.config["UPLOAD_FOLDER"], name)
    os.makedirs(path, exist_ok=True)
    return path


def write_atomically(path, data):
    """Write bytes to `path` through a temporary file, so a reader never sees half a file."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove(path):
    """Delete a file if it exists."""
    if path and os.path.exists(path):
        os.remove(path)


def delete_older_than(path, seconds, now=None):
    """Delete the files in folder `path` last written more than `seconds` ago."""
    cutoff = (time.time() if now is None else now) - seconds
    for entry in os.scandir(path):
        if entry.is_file() and entry.stat().st_mtime < cutoff:
            remove(entry.path)
