"""Enrolment: check a face photo, then write the user row and the face photo together or not at all.

Also the person's own face photos once enrolled (add, remove) and the kiosk photo
that waits, server-side, for the person to confirm it.
"""

import os
import re
import shutil
import threading
import uuid

from flask import current_app, session
from sqlalchemy.exc import IntegrityError, OperationalError

from facelogin.config import photo_limits
from facelogin.engine import faces
from facelogin.engine.camera import CameraError, kiosk_frames
from facelogin.services import storage
from facelogin.services.gallery import get_gallery
from facelogin.services.sessions import hash_password
from models import User, db, utcnow

PHOTO_PROBLEMS = {
    "dark": "The photo is too dark - take one in good, even light",
    "no_face": "We could not find a face - use a clear photo of your face, looking at the camera",
    "many_faces": "We found {count} faces - use a photo with only you in it",
    "too_small": "Your face is too small in the photo - use one where your face is at least {min} pixels tall",
}


NAME_TAKEN = "That username is taken - choose another one"
SAVE_FAILED = "We could not save your registration - please try again later or ask staff"


class EnrollError(Exception):
    """Registration was refused; the message says what to do, `status` is the HTTP status."""

    def __init__(self, message, status=400, reason=None):
        super().__init__(message)
        self.status = status
        self.reason = reason  # for a refused photo: the PHOTO_PROBLEMS key


def face_from_photo(rgb):
    """Return (encoding, box) for the single face of an upright RGB photo, or raise EnrollError."""
    cfg = current_app.config
    # Photos can be large: detect on a copy up to 1024 px wide, upsampled once,
    # so that faces down to about the minimum height are still found.
    check = faces.find_single_face(rgb, cfg["MIN_FACE_HEIGHT"], detect_width=1024)
    if check.problem:
        message = PHOTO_PROBLEMS[check.problem].format(count=check.count, min=cfg["MIN_FACE_HEIGHT"])
        raise EnrollError(message, reason=check.problem)
    return faces.encode_face(rgb, check.box), check.box


def _stage_upload(photo):
    """Save the photo (an upload, bytes or a file path) under a server-made name in UPLOAD_FOLDER."""
    path = os.path.join(current_app.config["UPLOAD_FOLDER"], f"{uuid.uuid4().hex}.upload")
    if isinstance(photo, (bytes, bytearray)):
        with open(path, "wb") as f:
            f.write(photo)
    elif isinstance(photo, (str, os.PathLike)):
        shutil.copyfile(photo, path)
    else:
        photo.save(path)
    return path


# Checking that a face is new and saving it must not interleave with another
# enrolment in this process, or two accounts racing with one face could both
# pass the check. (Across processes the window remains: see SECURITY.md.)
ENROL_LOCK = threading.Lock()


def check_new_face(encoding):
    """Refuse a face that already belongs to an enrolled account."""
    match = get_gallery().index().identify(encoding)
    if match.distance <= current_app.config["FACE_TOLERANCE"]:
        raise EnrollError("This face is already registered to an account - log in instead", 409)


def save_user(username, password_hash, templates, face_jpeg):
    """Write a user row and its known_faces/<id>.jpg together, or neither; return the user."""
    face_file = None
    committed = False
    try:
        user = User(username=username, password_hash=password_hash, face_encodings=templates, faces_updated_at=utcnow())
        db.session.add(user)
        db.session.flush()  # assigns the id that names the face photo
        face_file = storage.known_face_path(user.id)
        storage.write_atomically(face_file, face_jpeg)
        db.session.commit()
        committed = True
        return user
    except IntegrityError as e:
        # Another registration took the name between our check and our commit.
        raise EnrollError(NAME_TAKEN, 409) from e
    except OperationalError as e:
        raise EnrollError("The system is busy - please try again in a moment", 503) from e
    except OSError as e:
        current_app.logger.error("could not store a registration: %s", e.strerror)
        raise EnrollError(SAVE_FAILED, 503) from e
    finally:
        if not committed:
            db.session.rollback()
            storage.remove(face_file)


def register_user(username, password, photo):
    """Create a user from a name, a password and a photo (upload, bytes or path); on failure keep nothing."""
    if User.by_username(username):
        raise EnrollError(NAME_TAKEN, 409)
    staged = None
    saved = False
    try:
        staged = _stage_upload(photo)
        with open(staged, "rb") as f:
            rgb = faces.read_image(f.read(), **photo_limits(current_app.config))
        encoding, box = face_from_photo(rgb)
        password_hash, face_jpeg = hash_password(password), faces.encode_jpeg(faces.face_crop(rgb, box))
        with ENROL_LOCK:
            check_new_face(encoding)
            user = save_user(username, password_hash, [encoding.tolist()], face_jpeg)
        saved = True
        return user
    except faces.ImageError as e:
        raise EnrollError(str(e)) from e
    except OSError as e:
        current_app.logger.error("could not stage a registration upload: %s", e.strerror)
        raise EnrollError(SAVE_FAILED, 503) from e
    finally:
        if not saved:
            db.session.rollback()
        if not (saved and current_app.config["KEEP_UPLOADS"]):
            storage.remove(staged)


TEMPLATES_UNREADABLE = "Your stored face data could not be read - ask staff to reset your face, then add a photo again"


def _templates_of(user):
    """Return `user`'s templates, or raise EnrollError when the stored value does not load."""
    templates = user.templates()
    if templates is None:
        raise EnrollError(TEMPLATES_UNREADABLE, 409)
    return templates


def add_template(user, photo_bytes):
    """Add a face template from another photo of `user`; refuse a different or foreign face."""
    cfg = current_app.config
    templates = _templates_of(user)
    if len(templates) >= cfg["MAX_TEMPLATES"]:
        raise EnrollError(f"You already have {len(templates)} photos - remove one before adding another", 409)
    try:
        rgb = faces.read_image(photo_bytes, **photo_limits(cfg))
    except faces.ImageError as e:
        raise EnrollError(str(e)) from e
    encoding, box = face_from_photo(rgb)
    if templates and faces.face_distance(templates, encoding).min() > cfg["FACE_TOLERANCE"]:
        raise EnrollError("That photo does not look like your other photos - use a clear photo of you")
    with ENROL_LOCK:
        match = get_gallery().index().identify(encoding)
        if match.label != user.id and match.distance <= cfg["FACE_TOLERANCE"]:
            raise EnrollError("That face is registered to another account", 409)
        user.face_encodings = templates + [encoding.tolist()]
        user.faces_updated_at = utcnow()
        try:
            if not os.path.isfile(storage.known_face_path(user.id)):
                # A user with no face yet (an admin made without one, or after a face
                # reset): this photo becomes the one shown on their page and to admins.
                face_jpeg = faces.encode_jpeg(faces.face_crop(rgb, box))
                storage.write_atomically(storage.known_face_path(user.id), face_jpeg)
            db.session.commit()
        except (OSError, OperationalError) as e:
            db.session.rollback()
            raise EnrollError("We could not save your photo - please try again later or ask staff", 503) from e


def remove_template(user, number):
    """Remove template `number` (1-based) of `user`, keeping at least one."""
    templates = _templates_of(user)
    if not 1 <= number <= len(templates):
        raise EnrollError("There is no such photo", 404)
    if len(templates) == 1:
        raise EnrollError("Keep at least one photo - add another before removing this one")
    del templates[number - 1]
    user.face_encodings = templates
    user.faces_updated_at = utcnow()
    db.session.commit()


# --- a photo taken with the kiosk camera ------------------------------------------------------
CAPTURE_MAX_AGE = 600  # seconds an unconfirmed kiosk photo is kept
CAPTURE_NAME = re.compile(r"[0-9a-f]{32}")


def take_photo(posted=()):
    """Return one picture as JPEG bytes: a server camera frame, or the one the kiosk browser posted."""
    cfg = current_app.config
    browser = cfg["CAMERA_MODE"] == "browser"
    with kiosk_frames(cfg["CAMERA_SOURCE"], 1, cfg["CAMERA_TIMEOUT"], browser, posted) as frames:
        frame = next(frames, None)
    if frame is None:
        raise CameraError("no_frames")
    return faces.encode_jpeg(faces.frame_to_rgb(frame))


def captured_path():
    """Return the path of this session's kiosk photo, or None if there is none on disk."""
    name = session.get("capture")
    if not (isinstance(name, str) and CAPTURE_NAME.fullmatch(name)):
        return None
    path = os.path.join(storage.folder("captures"), f"{name}.jpg")
    return path if os.path.isfile(path) else None


def discard_capture():
    """Delete this session's kiosk photo, and any other left longer than CAPTURE_MAX_AGE."""
    storage.remove(captured_path())
    session.pop("capture", None)
    storage.delete_older_than(storage.folder("captures"), CAPTURE_MAX_AGE)


def keep_capture(jpeg):
    """Keep a kiosk photo server-side for this session until the person confirms or discards it."""
    discard_capture()
    name = uuid.uuid4().hex
    storage.write_atomically(os.path.join(storage.folder("captures"), f"{name}.jpg"), jpeg)
    session["capture"] = name
