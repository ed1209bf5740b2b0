"""Registration: check the photo, then write the user row and the face photo together or not at all."""

import os
import uuid

from flask import current_app
from sqlalchemy.exc import IntegrityError, OperationalError

import faces
from gallery import get_gallery
from models import User, db, utcnow
from security import hash_password

PHOTO_PROBLEMS = {
    "dark": "The photo is too dark - take one in good, even light",
    "no_face": "We could not find a face - use a clear photo of your face, looking at the camera",
    "many_faces": "We found {count} faces - use a photo with only you in it",
    "too_small": "Your face is too small in the photo - use one where your face is at least {min} pixels tall",
}


class EnrollError(Exception):
    """Registration was refused; the message says what to do, `status` is the HTTP status."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def face_from_photo(rgb):
    """Return (encoding, box) for the single face of an upright RGB photo, or raise EnrollError."""
    cfg = current_app.config
    # Photos can be large: detect on a copy up to 1024 px wide, upsampled once,
    # so that faces down to about the minimum height are still found.
    check = faces.find_single_face(rgb, cfg["MIN_FACE_HEIGHT"], detect_width=1024)
    if check.problem:
        message = PHOTO_PROBLEMS[check.problem].format(count=check.count, min=cfg["MIN_FACE_HEIGHT"])
        raise EnrollError(message)
    return faces.encode_face(rgb, check.box), check.box


def known_face_path(user_id):
    """Return the path of a user's enrolled face photo."""
    return os.path.join(current_app.config["KNOWN_FACES_FOLDER"], f"{int(user_id)}.jpg")


def _write_atomically(path, data):
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


def _remove(path):
    """Delete a file if it exists."""
    if path and os.path.exists(path):
        os.remove(path)


def _stage_upload(storage):
    """Save the upload under a server-made name in UPLOAD_FOLDER and return its path."""
    path = os.path.join(current_app.config["UPLOAD_FOLDER"], f"{uuid.uuid4().hex}.upload")
    storage.save(path)
    return path


def check_new_face(encoding):
    """Refuse a face that already belongs to an enrolled account."""
    match = get_gallery().index().identify(encoding)
    if match.distance <= current_app.config["FACE_TOLERANCE"]:
        raise EnrollError("This face is already registered to an account - log in instead", 409)


def register_user(username, password, photo):
    """Create a user from form data and an uploaded photo; on any failure nothing is kept."""
    if User.by_username(username):
        raise EnrollError("That username is taken - choose another one", 409)
    staged = face_file = None
    committed = False
    try:
        staged = _stage_upload(photo)
        with open(staged, "rb") as f:
            rgb = faces.read_image(f.read(), current_app.config["MAX_IMAGE_PIXELS"])
        encoding, box = face_from_photo(rgb)
        check_new_face(encoding)
        user = User(username=username, password_hash=hash_password(password),
                    face_encodings=[encoding.tolist()], faces_updated_at=utcnow())
        db.session.add(user)
        db.session.flush()  # assigns the id that names the face photo
        face_file = known_face_path(user.id)
        _write_atomically(face_file, faces.encode_jpeg(faces.face_crop(rgb, box)))
        db.session.commit()
        committed = True
        return user
    except faces.ImageError as e:
        raise EnrollError(str(e)) from e
    except IntegrityError as e:
        # Another registration took the name between our check and our commit.
        raise EnrollError("That username is taken - choose another one", 409) from e
    except OperationalError as e:
        raise EnrollError("The system is busy - please try again in a moment", 503) from e
    except OSError as e:
        current_app.logger.error("could not store a registration: %s", e.strerror)
        raise EnrollError("We could not save your registration - please try again later or ask staff", 503) from e
    finally:
        if not committed:
            db.session.rollback()
            _remove(face_file)
        if not (committed and current_app.config["KEEP_UPLOADS"]):
            _remove(staged)
