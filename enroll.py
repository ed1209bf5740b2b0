"""Registration: check the photo, then write the user row and the face photo together or not at all."""

import os
import threading
import shutil
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


def known_face_path(user_id):
    """Return the path of a user's enrolled face photo."""
    return os.path.join(current_app.config["KNOWN_FACES_FOLDER"], f"{int(user_id)}.jpg")


def has_face_photo(user):
    """Return True if `user` has an enrolled face photo on disk."""
    return os.path.isfile(known_face_path(user.id))


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
        user = User(username=username, password_hash=password_hash,
                    face_encodings=templates, faces_updated_at=utcnow())
        db.session.add(user)
        db.session.flush()  # assigns the id that names the face photo
        face_file = known_face_path(user.id)
        _write_atomically(face_file, face_jpeg)
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
            _remove(face_file)


def register_user(username, password, photo):
    """Create a user from a name, a password and a photo (upload, bytes or path); on failure keep nothing."""
    if User.by_username(username):
        raise EnrollError(NAME_TAKEN, 409)
    staged = None
    saved = False
    try:
        staged = _stage_upload(photo)
        with open(staged, "rb") as f:
            rgb = faces.read_image(f.read(), current_app.config["MAX_IMAGE_PIXELS"])
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
            _remove(staged)


def add_template(user, photo_bytes):
    """Add a face template from another photo of `user`; refuse a different or foreign face."""
    cfg = current_app.config
    templates = list(user.face_encodings)
    if len(templates) >= cfg["MAX_TEMPLATES"]:
        raise EnrollError(f"You already have {len(templates)} photos - remove one before adding another", 409)
    try:
        rgb = faces.read_image(photo_bytes, cfg["MAX_IMAGE_PIXELS"])
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
            if not os.path.isfile(known_face_path(user.id)):
                # A user with no face yet (an admin made without one, or after a face
                # reset): this photo becomes the one shown on their page and to admins.
                _write_atomically(known_face_path(user.id), faces.encode_jpeg(faces.face_crop(rgb, box)))
            db.session.commit()
        except (OSError, OperationalError) as e:
            db.session.rollback()
            raise EnrollError("We could not save your photo - please try again later or ask staff", 503) from e


def remove_template(user, number):
    """Remove template `number` (1-based) of `user`, keeping at least one."""
    templates = list(user.face_encodings)
    if not 1 <= number <= len(templates):
        raise EnrollError("There is no such photo", 404)
    if len(templates) == 1:
        raise EnrollError("Keep at least one photo - add another before removing this one")
    del templates[number - 1]
    user.face_encodings = templates
    user.faces_updated_at = utcnow()
    db.session.commit()
