"""Face thumbnails: a small picture of the face behind each template, enrolled or learned, for its owner.

They live in KNOWN_FACES_FOLDER/<user id>/<name>.jpg (0700/0600, like the rest), where the name
is a hash of the template's numbers: a picture belongs to exactly one template whatever the order
of the list, a template without one (enrolled before thumbnails existed) simply has none, and
removing a template removes the picture of those numbers. A user's folder goes with the user.
"""

import contextlib
import hashlib
import os
import shutil

import numpy as np
from flask import current_app

from facelogin.engine import faces
from facelogin.services import storage

SIDE = 160  # px, the longer side: enough to recognise oneself, small enough to say little more
PAD = 0.3  # room around the face box, in box heights and widths


def picture(rgb, box):
    """Return the JPEG bytes of the thumbnail of the face in `box` of an RGB image."""
    return faces.encode_jpeg(faces.face_crop(rgb, box, pad=PAD, max_side=SIDE), quality=85)


def folder(user_id):
    """Return the folder of user `user_id`'s thumbnails."""
    return os.path.join(current_app.config["KNOWN_FACES_FOLDER"], str(int(user_id)))


def path(user_id, template):
    """Return where the thumbnail of `template` (128 numbers) of user `user_id` is kept."""
    digest = hashlib.sha256(np.asarray(template, dtype=np.float64).tobytes()).hexdigest()[:32]
    return os.path.join(folder(user_id), f"{digest}.jpg")


def has(user_id, template):
    """Return True if `template` (None: one that does not load) has a thumbnail on disk."""
    return template is not None and os.path.isfile(path(user_id, template))


def save(user_id, template, jpeg):
    """Keep the thumbnail of one template of user `user_id`."""
    if not os.path.isdir(folder(user_id)):
        storage.make_folder(folder(user_id))
    storage.write_atomically(path(user_id, template), jpeg)


def remove(user_id, templates):
    """Delete the thumbnails of `templates`; None (a template that does not load) is skipped."""
    for template in templates:
        if template is not None:
            storage.remove(path(user_id, template))


def remove_all(user_id):
    """Delete every thumbnail of user `user_id`, with their folder."""
    with contextlib.suppress(FileNotFoundError):  # none kept, or removed by another process first
        shutil.rmtree(folder(user_id))


def send(user_id, template):
    """Answer with the thumbnail of `template` (None: 404), never kept by the browser, or 404 if it has none."""
    return storage.send_private(path(user_id, template) if template is not None else None)
