"""Bulk enrolment (`flask faces import DIR`): many people's face photos, checked in parallel.

DIR holds <username>.jpg (one photo) or <username>/*.jpg (up to MAX_TEMPLATES photos,
in name order). Worker processes run registration's own photo checks, encode the
faces and hash a new random password; a person is enrolled with the photos that pass
and each photo left out is reported, but photos of different people in one folder refuse
the person (which one is them?). Only this process writes, one user at a time,
through enrolment.save_user (the row, known_faces/<id>.jpg and a thumbnail per template
together or not at all),
so an interrupted import leaves whole users only and a second run skips them.
Every person imported gets the consent the operator states they collected (`--consent VERSION`).
"""

import os
import pickle
import secrets
import signal
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import NamedTuple

import click
import numpy as np
from flask import Flask, current_app
from threadpoolctl import threadpool_limits

from facelogin.config import photo_limits
from facelogin.engine import faces
from facelogin.services import consent, enrolment, thumbnails
from facelogin.services.gallery import get_gallery
from facelogin.services.sessions import USERNAME_HELP, USERNAME_RULE, hash_password
from models import User, db, utcnow

SAME_PERSON = 0.6  # dlib's own threshold: photos of one folder further apart show two people

REASONS = {
    "no_face": "no face",
    "many_faces": "several faces",
    "too_small": "face too small",
    "dark": "too dark",
    "turned": "face turned away",
    "blurred": "blurred",
    "eyes_closed": "eyes closed",
    "shadow": "face half in shadow",
    "not_an_image": "not an image",
    "different_people": "photos of different people",
    "known_face": "face already enrolled",
    "bad_name": "invalid username",
    "no_photos": "no photos",
    "not_saved": "not saved",
}


class Job(NamedTuple):
    """One person to enrol: the username and the paths of their photos."""

    username: str
    photos: tuple


class Prepared(NamedTuple):
    """A person with at least one good photo: templates, the face crop to keep, a new password, photos left out.

    `pictures` holds the thumbnail of each template, in order.
    """

    username: str
    templates: list
    face_jpeg: bytes
    password: str
    password_hash: str
    left_out: tuple = ()  # Refused entries, one per photo that failed, named "username/photo"
    pictures: tuple = ()


class Refused(NamedTuple):
    """A person not enrolled: a key of REASONS and the detail for the operator."""

    username: str
    reason: str
    detail: str


class Summary(NamedTuple):
    """What an import did: (username, password) pairs, usernames skipped, Refused people, photos left out."""

    enrolled: list
    skipped: list
    refused: list
    left_out: list


def find_people(folder, max_templates):
    """Return the Jobs in `folder` and the Refused entries for names that cannot be usernames."""
    jobs, refused, seen = [], [], set()
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith("."):
            continue
        if os.path.isdir(path):
            username = name
            photos = sorted(
                os.path.join(path, f)
                for f in os.listdir(path)
                if not f.startswith(".") and os.path.isfile(os.path.join(path, f))
            )
        else:
            username, photos = os.path.splitext(name)[0], [path]
        if not USERNAME_RULE.fullmatch(username):
            refused.append(Refused(username, "bad_name", USERNAME_HELP))
        elif username.lower() in seen:
            refused.append(Refused(username, "bad_name", "the same name (any case) is in the folder twice"))
        elif not photos:
            refused.append(Refused(username, "no_photos", "the folder is empty"))
        else:
            seen.add(username.lower())
            jobs.append(Job(username, tuple(photos[:max_templates])))
    return jobs, refused


def _photo(path):
    """Return (encoding, box) of one enrolment photo, or the Refused entry (without a username) saying why not."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            rgb = faces.read_image(f.read(), **photo_limits(current_app.config))
        return enrolment.face_from_photo(rgb), rgb
    except faces.ImageError as e:
        return Refused("", "not_an_image", f"{name}: {e}"), None
    except enrolment.EnrollError as e:
        return Refused("", e.reason or "refused", f"{name}: {e}"), None
    except OSError as e:
        return Refused("", "not_an_image", f"{name}: cannot be read ({e.strerror})"), None


def prepare(job):
    """Check and encode one person's photos and hash a new password; return Prepared or Refused."""
    templates, face_jpeg, left_out, first, pictures = [], None, [], None, []
    for path in job.photos:
        name = os.path.basename(path)
        result, rgb = _photo(path)
        if isinstance(result, Refused):
            left_out.append(result._replace(username=f"{job.username}/{name}"))
            continue
        encoding, box = result
        if templates and faces.face_distance(templates, encoding).max() > SAME_PERSON:
            return Refused(job.username, "different_people", f"{name} is not the same person as {first}")
        templates.append(encoding)
        pictures.append(thumbnails.picture(rgb, box))
        first = first or name
        face_jpeg = face_jpeg or faces.encode_jpeg(faces.face_crop(rgb, box))
    if not templates:  # not one good photo: the person is refused, for the first photo's reason
        return Refused(job.username, left_out[0].reason, "; ".join(entry.detail for entry in left_out))
    password = secrets.token_urlsafe(12)
    templates = [t.tolist() for t in templates]
    return Prepared(
        job.username, templates, face_jpeg, password, hash_password(password), tuple(left_out), tuple(pictures)
    )


def _start_worker(config):
    """Set up a worker process: one BLAS thread, Ctrl-C left to the parent, an app context."""
    threadpool_limits(1)  # one process per core already
    warnings.filterwarnings("ignore", "pkg_resources is deprecated")  # face_recognition_models' import
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool cleanly
    app = Flask("importer")
    app.config.update(config)
    app.app_context().push()  # face_from_photo and hash_password read the app's settings


def _worker_config():
    """Return the app's settings for a worker process: the picklable ones, secrets and database left out."""
    config = {}
    for key, value in current_app.config.items():
        if "SECRET" in key or key.endswith("_KEY") or key.startswith("SQLALCHEMY_"):
            continue  # a worker only checks photos and hashes passwords
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - anything unpicklable stays behind
            continue
        config[key] = value
    return config


class _Faces:
    """The faces enrolled so far (the gallery plus this run), to refuse a face enrolled twice."""

    def __init__(self, index):
        """Start from the gallery's index."""
        self.index = index
        self.labels, self.rows, self.size = [], np.empty((64, faces.ENCODING_SIZE), np.float32), 0

    def owner(self, templates, tolerance):
        """Return the label of an enrolled face within `tolerance` of any template, else None."""
        for template in templates:
            match = self.index.identify(template)
            if match.distance <= tolerance:
                return match.label
            if self.size:
                d = faces.face_distance(self.rows[: self.size], template)
                if d.min() <= tolerance:
                    return self.labels[int(np.argmin(d))]
        return None

    def add(self, label, templates):
        """Remember a newly enrolled user's templates."""
        for template in templates:
            if self.size == len(self.rows):
                self.rows = np.concatenate([self.rows, np.empty_like(self.rows)])
            self.rows[self.size] = template
            self.labels.append(label)
            self.size += 1


def _results(jobs, workers):
    """Yield prepare(job) for each job in order, across `workers` processes when more than one."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(prepare, jobs)
        return
    # spawn: fresh interpreters, so no OpenCV/BLAS threads or database connections are forked.
    pool = ProcessPoolExecutor(
        min(workers, len(jobs)),
        mp_context=get_context("spawn"),
        initializer=_start_worker,
        initargs=(_worker_config(),),
    )
    try:
        yield from pool.map(prepare, jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _save(prepared, known, agreed):
    """Enrol one prepared person unless their face is already enrolled; return Refused or None."""
    owner = known.owner(prepared.templates, current_app.config["FACE_TOLERANCE"])
    if owner is not None:
        other = db.session.get(User, owner)
        name = other.username if other else owner
        return Refused(prepared.username, "known_face", f"the same face is enrolled as {name}")
    try:
        user = enrolment.save_user(
            prepared.username, prepared.password_hash, prepared.templates, prepared.face_jpeg, prepared.pictures, agreed
        )
    except enrolment.EnrollError as e:
        return Refused(prepared.username, "not_saved", str(e))
    known.add(user.id, prepared.templates)
    return None


def plan(folder):
    """Return the Jobs still to do in `folder` and a Summary holding what is skipped or refused."""
    jobs, refused = find_people(folder, current_app.config["MAX_TEMPLATES"])
    skipped = [job.username for job in jobs if User.by_username(job.username)]
    done = set(skipped)
    return [job for job in jobs if job.username not in done], Summary([], skipped, refused, [])


def enrol(jobs, summary, workers=None, on_enrolled=None, *, agreed):
    """Enrol `jobs`, recording outcomes in `summary`; yield after each person, for a progress bar.

    `agreed` (a consent.Consent) is recorded on every account; on_enrolled(username, password)
    is called right after each user is committed.
    """
    known = _Faces(get_gallery().index())
    for result in _results(jobs, workers or os.cpu_count() or 1):
        problem = result if isinstance(result, Refused) else _save(result, known, agreed)
        if problem is None:
            summary.enrolled.append((result.username, result.password))
            summary.left_out.extend(result.left_out)
            if on_enrolled:
                on_enrolled(result.username, result.password)
        elif problem.reason == "not_saved" and User.by_username(problem.username):
            summary.skipped.append(problem.username)  # enrolled meanwhile by somebody else
        else:
            summary.refused.append(problem)
        yield result.username


def _password_writer(path):
    """Return (write(username, password), close) for a 0600 file that new passwords are appended to."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was already there
    f = os.fdopen(fd, "a", encoding="utf-8")

    def write(username, password):
        f.write(f"{username}\t{password}\n")
        f.flush()

    return write, f.close


def report(summary, echo=click.echo):
    """Print what an import did: counts, then every refusal and every photo left out, with its reason."""
    echo(
        f"Enrolled {len(summary.enrolled)}, skipped {len(summary.skipped)} (already there), "
        f"refused {len(summary.refused)}; {len(summary.left_out)} photos left out."
    )
    if summary.skipped:
        echo("Skipped (already there): " + ", ".join(summary.skipped))
    for entry in summary.refused:
        echo(f"Refused {entry.username}: {REASONS.get(entry.reason, entry.reason)} - {entry.detail}")
    for entry in summary.left_out:
        echo(f"Left out {entry.username}: {REASONS.get(entry.reason, entry.reason)} - {entry.detail}")


def import_folder(folder, consent_version, workers=None, passwords=None):
    """The `flask faces import` command: enrol FOLDER with a progress bar, then report.

    `consent_version` names the notice the operator says each person agreed to; it is recorded
    on each account with the time of the import.
    """
    agreed = consent.Consent(consent_version, utcnow())
    jobs, summary = plan(folder)
    write, close = _password_writer(passwords) if passwords else (None, None)
    try:
        with click.progressbar(
            enrol(jobs, summary, workers, write, agreed=agreed), length=len(jobs), label="Enrolling", file=sys.stderr
        ) as bar:
            for _ in bar:
                pass
    finally:
        if close:
            close()
        report(summary)
        if summary.enrolled and passwords:
            click.echo(f"New passwords were appended to {passwords} (mode 0600).")
        elif summary.enrolled:
            click.echo("New passwords (shown only now):")
            for username, password in summary.enrolled:
                click.echo(f"  {username}\t{password}")
    return summary
