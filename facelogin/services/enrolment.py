"""Enrolment: check a face photo, then write the user row and the face photo together or not at all.

Also the person's own face photos once enrolled (add, remove), with a thumbnail of each
(services/thumbnails.py), and the kiosk photos that wait, server-side, for the person to
confirm them: checked as soon as they are taken, so a bad one is refused before anything is asked.
"""

import contextlib
import os
import re
import shutil
import threading
import time
import uuid

from flask import current_app, g, session
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from facelogin.config import photo_limits
from facelogin.engine import faces, limits, quality
from facelogin.engine.camera import CameraError, kiosk_frames
from facelogin.services import attempts, consent, learning, storage, throttle, thumbnails
from facelogin.services.gallery import enrolling, get_gallery
from facelogin.services.sessions import hash_password
from models import LoginAttempt, User, db, utcnow

PHOTO_PROBLEMS = {
    "dark": "Your face is too dark in the photo - face the light, or take one in good, even light",
    "no_face": "We could not find a face - use a clear photo of your face, looking at the camera",
    "many_faces": "We found {count} faces - use a photo with only you in it",
    "too_small": "Your face is too small in the photo - come closer, or use one where it is at least {min} pixels tall",
    # The enrolment quality gate (engine/quality.py): each says what to change.
    "turned": "Turn to face the camera - your face is turned away in this photo",
    "blurred": "Hold still - the photo is blurred; take a sharp one",
    "eyes_closed": "Open your eyes - they look closed in this photo",
    "shadow": "Face the light - one side of your face is in shadow",
}


NAME_TAKEN = "That username is taken - choose another one"
SAVE_FAILED = "We could not save your registration - please try again later or ask staff"
# A face that is already enrolled gets this, with the status of a refused photo: saying
# "already registered" would let anyone test with a photo whether a person has an account.
FACE_REFUSED = "We could not register this face - please ask staff for help"
FACE_REFUSED_STATUS = 400
REGISTRATION_CLOSED = "Registration is closed here - please ask staff if you need an account"
REGISTRATION_BY_STAFF = "New accounts are made with staff here - please ask a member of staff to register you"


class EnrollError(Exception):
    """Registration was refused; the message says what to do, `status` is the HTTP status."""

    def __init__(self, message, status=400, reason=None):
        super().__init__(message)
        self.status = status
        self.reason = reason  # for a refused photo: the PHOTO_PROBLEMS key


class FaceConflict(EnrollError):
    """The face is already enrolled to account `holder` (an id): refused with the neutral FACE_REFUSED."""

    def __init__(self, holder, distance):
        super().__init__(FACE_REFUSED, FACE_REFUSED_STATUS, reason="known_face")
        self.holder, self.distance = holder, distance


def registration_refusal():
    """Return why this visitor may not register someone now (REGISTRATION), or None if they may."""
    mode = current_app.config["REGISTRATION"]
    if mode == "closed":
        return REGISTRATION_CLOSED
    if mode == "staff" and not (g.get("user") is not None and g.user.is_admin):
        return REGISTRATION_BY_STAFF
    return None


def quality_bars(cfg):
    """Return the enrolment quality gate's limits from the ENROL_* settings."""
    return quality.Bars(
        cfg["ENROL_MAX_YAW"],
        cfg["ENROL_MAX_PITCH"],
        cfg["ENROL_MIN_SHARPNESS"],
        cfg["ENROL_MIN_OPENNESS"],
        cfg["ENROL_MIN_EVEN_LIGHT"],
    )


def face_from_photo(rgb):
    """Return (encoding, box) for the single good face of an upright RGB enrolment photo, or raise EnrollError."""
    cfg = current_app.config
    # Photos can be large: detect on a copy up to 1024 px wide, upsampled once,
    # so that faces down to about the minimum height are still found.
    check = faces.find_single_face(rgb, cfg["MIN_FACE_HEIGHT"], detect_width=1024)
    problem = check.problem
    if problem is None:
        # Enrolment only: a template is compared with every later login, a login frame only once.
        measures = quality.measure(rgb, check.box, faces.face_landmarks(rgb, check.box))
        problem = quality.problem(measures, quality_bars(cfg))
    if problem:
        message = PHOTO_PROBLEMS[problem].format(count=check.count, min=cfg["MIN_FACE_HEIGHT"])
        raise EnrollError(message, reason=problem)
    return faces.encode_face(rgb, check.box, jitters=cfg["ENROL_JITTERS"]), check.box


def _stage_upload(photo):
    """Save the photo (an upload, bytes or a file path) under a server-made name in UPLOAD_FOLDER."""
    path = os.path.join(current_app.config["UPLOAD_FOLDER"], f"{uuid.uuid4().hex}.upload")
    try:
        with storage.create_private(path) as f:
            if isinstance(photo, (bytes, bytearray)):
                f.write(photo)
            elif isinstance(photo, (str, os.PathLike)):
                with open(photo, "rb") as source:
                    shutil.copyfileobj(source, f)
            else:
                photo.save(f)
    except BaseException:
        storage.remove(path)  # a half-written copy is of no use to anyone
        raise
    return path


# Checking that a face is new and saving it must not interleave with another
# enrolment, or two accounts racing with one face could both pass the check:
# in this process (ENROL_LOCK) nor in another on the same database (enrolling()).
ENROL_LOCK = threading.Lock()


def check_new_face(encoding, user=None):
    """Refuse (FaceConflict) a face that already belongs to an enrolled account other than `user`."""
    match = get_gallery().index().identify(encoding)
    if match.distance <= current_app.config["FACE_TOLERANCE"] and (user is None or match.label != user.id):
        raise FaceConflict(match.label, match.distance)


@contextlib.contextmanager
def conflicts_recorded(mode, username, address, user=None):
    """Record (record_conflict) a FaceConflict raised in the block, then let it go on."""
    try:
        yield
    except FaceConflict as e:
        record_conflict(e, mode, username, address, user)
        raise


def record_conflict(conflict, mode, username, address, user=None):
    """Keep a refused face in the audit log, for /admin: who holds the face, the name tried, from where."""
    # A LoginAttempt row with outcome "conflict": the holder is matched_user_id, the
    # username tried is the reason (usernames fit its 64 characters).
    db.session.rollback()
    db.session.add(
        LoginAttempt(
            at=attempts.clock(),
            mode=mode,
            outcome="conflict",
            reason=username[:64],
            client_addr=address,
            claimed_user_id=user.id if user else None,
            matched_user_id=conflict.holder,
            distance=conflict.distance,
        )
    )
    try:
        db.session.commit()
    except SQLAlchemyError as e:
        # The person still gets the refusal; only the audit row is lost, and the log says so.
        db.session.rollback()
        current_app.logger.error("could not record a refused face: %s", e)


def save_user(username, password_hash, templates, face_jpeg, pictures=(), agreed=None):
    """Write a user row, its known_faces/<id>.jpg and the thumbnails of its templates together, or none.

    `pictures` holds the thumbnail JPEG of each template, in order (None, or fewer: none kept).
    Templates are kept only with `agreed`, the person's consent.Consent, recorded on the row;
    no templates and no `face_jpeg` make a password-only account.
    """
    if templates and agreed is None:
        raise EnrollError(consent.REFUSED)
    face_file = user_id = None
    committed = False
    try:
        user = User(username=username, password_hash=password_hash, face_encodings=templates, faces_updated_at=utcnow())
        if templates:
            consent.record(user, agreed)
        db.session.add(user)
        db.session.flush()  # assigns the id that names the face photo
        user_id = user.id
        face_file = storage.known_face_path(user_id)
        thumbnails.remove_all(user_id)  # a reused id: a new user has no pictures yet
        if face_jpeg is not None:
            storage.write_atomically(face_file, face_jpeg)
        for template, jpeg in zip(templates, pictures, strict=False):
            if jpeg is not None:
                thumbnails.save(user_id, template, jpeg)
        db.session.commit()
        committed = True
        return user
    except IntegrityError as e:
        # Another registration took the name between our check and our commit.
        raise EnrollError(NAME_TAKEN, 409) from e
    except OperationalError as e:
        raise EnrollError(attempts.BUSY, 503) from e
    except OSError as e:
        current_app.logger.error("could not store a registration: %s", e.strerror)
        raise EnrollError(SAVE_FAILED, 503) from e
    finally:
        if not committed:
            db.session.rollback()
            storage.remove(face_file)
            if user_id is not None:
                thumbnails.remove_all(user_id)


TOO_MANY = "Too many refused registrations from this kiosk - please wait {} seconds, or ask staff"


def _claim_registration(address):
    """Count a registration from `address` against REGISTER_RATE_LIMIT; return the limit's key (None: no address)."""
    cfg = current_app.config
    limit = f"register:{address}" if address else None  # the command line has no address to limit
    if limit and (wait := throttle.claim(limit, cfg["REGISTER_RATE_LIMIT"], cfg["REGISTER_RATE_WINDOW"])):
        raise EnrollError(TOO_MANY.format(wait), 429)
    return limit


def check_kiosk_photo(jpeg, address=None):
    """Refuse (EnrollError) a kiosk photo that registration would refuse, before any name is asked.

    As in register_user, a refusal counts against the register rate limit and a face already
    enrolled gets the neutral FACE_REFUSED and is recorded for /admin, with no name tried.
    """
    limit = _claim_registration(address)
    try:
        rgb = faces.read_image(jpeg, **photo_limits(current_app.config))
    except faces.ImageError as e:
        raise EnrollError(str(e)) from e
    encoding, _ = face_from_photo(rgb)
    with conflicts_recorded("register-camera", "", address):
        check_new_face(encoding)
    if limit:
        throttle.release(limit)  # a good photo is not a refusal; the registration itself is counted again


def register_user(username, password, photo, address=None, mode="register", agreed=None):
    """Create a user from a name, a password and a photo (upload, bytes or path); on failure keep nothing.

    `agreed` (the person's consent.Consent) is required and recorded: without it the photo is not even staged.
    A face already enrolled is refused with FACE_REFUSED and recorded (as `mode`, from `address`) for /admin.
    """
    if agreed is None:
        raise EnrollError(consent.REFUSED)
    limit = _claim_registration(address)
    staged = None
    saved = False
    try:
        staged = _stage_upload(photo)
        with open(staged, "rb") as f:
            rgb = faces.read_image(f.read(), **photo_limits(current_app.config))
        # The photo is checked before the name: a bad photo answers the same whether the name is taken.
        encoding, box = face_from_photo(rgb)
        if User.by_username(username):
            raise EnrollError(NAME_TAKEN, 409)
        password_hash, face_jpeg = hash_password(password), faces.encode_jpeg(faces.face_crop(rgb, box))
        with ENROL_LOCK, enrolling():
            check_new_face(encoding)
            user = save_user(
                username, password_hash, [encoding.tolist()], face_jpeg, [thumbnails.picture(rgb, box)], agreed
            )
        saved = True
        if limit:
            throttle.release(limit)  # refusals count, not the people who registered
        return user
    except limits.Busy as e:
        if limit:
            throttle.release(limit)  # the server was busy: not a refusal of this person
        raise EnrollError(attempts.BUSY, 503) from e
    except FaceConflict as e:
        record_conflict(e, mode, username, address)
        raise
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


def register_password_only(username, password, address=None):
    """Create a user with a name and a password and no face data; EnrollError if the name is taken."""
    limit = _claim_registration(address)
    if User.by_username(username):
        raise EnrollError(NAME_TAKEN, 409)
    try:
        user = save_user(username, hash_password(password), [], None)
    except limits.Busy as e:
        if limit:
            throttle.release(limit)  # the server was busy: not a refusal of this person
        raise EnrollError(attempts.BUSY, 503) from e
    if limit:
        throttle.release(limit)  # refusals count, not the people who registered
    return user


TEMPLATES_UNREADABLE = "Your stored face data could not be read - ask staff to reset your face, then add a photo again"


def _templates_of(user):
    """Return `user`'s templates, or raise EnrollError when the stored value does not load."""
    templates = user.templates()
    if templates is None:
        raise EnrollError(TEMPLATES_UNREADABLE, 409)
    return templates


def _another_face(templates, photo_bytes):
    """Return (rgb, encoding, box) of a photo that may join `templates`, or raise EnrollError."""
    cfg = current_app.config
    if len(templates) >= cfg["MAX_TEMPLATES"]:
        raise EnrollError(f"You already have {len(templates)} photos - remove one before adding another", 409)
    try:
        rgb = faces.read_image(photo_bytes, **photo_limits(cfg))
    except faces.ImageError as e:
        raise EnrollError(str(e)) from e
    encoding, box = face_from_photo(rgb)
    if templates and faces.face_distance(templates, encoding).min() > cfg["FACE_TOLERANCE"]:
        raise EnrollError("That photo does not look like your other photos - use a clear photo of you")
    return rgb, encoding, box


def check_added_photo(user, photo_bytes, address=None):
    """Refuse (EnrollError) a kiosk photo that add_template would refuse, before it is shown to confirm."""
    _, encoding, _ = _another_face(_templates_of(user), photo_bytes)
    with conflicts_recorded("add-photo", user.username, address, user):
        check_new_face(encoding, user)


def _check_consent(user, agreed):
    """Refuse (EnrollError) a face for `user` without the consent.Consent `agreed` when they must give one."""
    if agreed is None and consent.needed(user):
        raise EnrollError(consent.REFUSED_TO_ADD)


def add_template(user, photo_bytes, address=None, agreed=None):
    """Add a face template from another photo of `user`; refuse a different or foreign face.

    A first face (or one after the notice changed) needs `agreed`, the person's consent.Consent, recorded with it.
    """
    _check_consent(user, agreed)
    templates = _templates_of(user)
    rgb, encoding, box = _another_face(templates, photo_bytes)
    with conflicts_recorded("add-photo", user.username, address, user), ENROL_LOCK, enrolling():
        check_new_face(encoding, user)
        _store_template(user, templates + [encoding.tolist()], rgb, box, agreed)


def _store_template(user, templates, rgb, box, agreed=None):
    """Save `user`'s new template list (the new one last) with its thumbnail, and the face photo if they have none."""
    user.face_encodings = templates
    user.faces_updated_at = utcnow()
    if agreed is not None:
        consent.record(user, agreed)
    try:
        thumbnails.save(user.id, templates[-1], thumbnails.picture(rgb, box))
        if not os.path.isfile(storage.known_face_path(user.id)):
            # A user with no face yet (an admin made without one, or after a face
            # reset): this photo becomes the one shown on their page and to admins.
            face_jpeg = faces.encode_jpeg(faces.face_crop(rgb, box))
            storage.write_atomically(storage.known_face_path(user.id), face_jpeg)
        db.session.commit()
    except (OSError, OperationalError) as e:
        db.session.rollback()
        if templates[-1] not in templates[:-1]:  # the same numbers twice share one picture
            thumbnails.remove(user.id, templates[-1:])
        raise EnrollError("We could not save your photo - please try again later or ask staff", 503) from e


def remove_template(user, number):
    """Remove template `number` (1-based) of `user`, keeping at least one."""
    templates = _templates_of(user)
    if not 1 <= number <= len(templates):
        raise EnrollError("There is no such photo", 404)
    if len(templates) == 1:
        raise EnrollError("Keep at least one photo - add another before removing this one")
    removed = templates.pop(number - 1)
    user.face_encodings = templates
    user.faces_updated_at = utcnow()
    pruned = learning.prune(user, templates)
    db.session.commit()
    # After the commit: a template whose picture is gone shows "no picture", a picture without its template nothing.
    thumbnails.remove(user.id, [t for t in [removed, *pruned] if t not in templates])


# --- a photo taken with the kiosk camera ------------------------------------------------------
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


# Each kiosk photo waits under its own session key: a member of staff registering someone
# may also add a photo of their own, and neither photo may stand in for the other.
REGISTERING, ADDING = "capture", "added_capture"


def captured_path(key=REGISTERING):
    """Return the path of this session's kiosk photo, or None if there is none on disk or it has expired."""
    name = session.get(key)
    if not (isinstance(name, str) and CAPTURE_NAME.fullmatch(name)):
        return None
    path = os.path.join(storage.folder("captures"), f"{name}.jpg")
    try:
        expired = os.path.getmtime(path) < time.time() - current_app.config["CAPTURE_KEEP_SECONDS"]
    except FileNotFoundError:
        return None
    return None if expired else path


def discard_capture(key=REGISTERING):
    """Delete this session's kiosk photo, and any other left longer than CAPTURE_KEEP_SECONDS."""
    storage.remove(captured_path(key))
    session.pop(key, None)
    consent.drop(key)
    storage.delete_older_than(storage.folder("captures"), current_app.config["CAPTURE_KEEP_SECONDS"])


def keep_capture(jpeg, key=REGISTERING):
    """Keep a kiosk photo server-side for this session until it is confirmed, discarded or expires."""
    discard_capture(key)
    name, folder = uuid.uuid4().hex, storage.folder("captures")
    storage.write_atomically(os.path.join(folder, f"{name}.jpg"), jpeg)
    session[key] = name
    storage.sweep_later(folder, current_app.config["CAPTURE_KEEP_SECONDS"])


def capture_to_register(posted=(), address=None, agreed=None):
    """Take a kiosk photo and keep it to confirm if registration would take it; else raise EnrollError.

    Without `agreed` (the person's consent.Consent, kept with the photo) no photo is taken.
    A refused photo is never written to disk; a CameraError passes up.
    """
    discard_capture()  # a new photo replaces the last one, good or not
    if agreed is None:
        raise EnrollError(consent.REFUSED)
    jpeg = take_photo(posted)
    check_kiosk_photo(jpeg, address)
    keep_capture(jpeg)
    consent.hold(REGISTERING, agreed)


def capture_to_add(user, posted=(), address=None, agreed=None):
    """Take a kiosk photo of `user` and keep it to confirm if add_template would take it; else raise EnrollError."""
    discard_capture(ADDING)
    _check_consent(user, agreed)  # before the camera: no photo is taken without it
    jpeg = take_photo(posted)
    check_added_photo(user, jpeg, address)
    keep_capture(jpeg, ADDING)
    if agreed is not None:
        consent.hold(ADDING, agreed)


NO_PHOTO_TO_ADD = "Take a photo first"


def add_captured(user, address=None):
    """Add the kiosk photo `user` confirmed as another template, then delete it; EnrollError if refused."""
    path = captured_path(ADDING)
    if path is None:
        raise EnrollError(NO_PHOTO_TO_ADD, 409)
    with open(path, "rb") as f:
        add_template(user, f.read(), address, consent.held(ADDING))
    discard_capture(ADDING)
