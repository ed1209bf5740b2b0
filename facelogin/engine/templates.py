"""Face-template serialisation: lists of 128 floats, pickled without globals, optionally sealed.

A stored value is read back through an unpickler that refuses every class and
function reference, then checked to be 0+ lists of 128 finite floats; with a
Fernet cipher it is also encrypted and authenticated. Nothing here knows Flask.
"""

import functools
import io
import math
import pickle

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from facelogin.engine.faces import ENCODING_SIZE

MAX_STORED_TEMPLATES = 32


class TamperedTemplateError(pickle.UnpicklingError):
    """A stored face-template value is not a list of 128-float lists (or does not open)."""


class _NoGlobalsUnpickler(pickle.Unpickler):
    """An unpickler that refuses every class and function reference."""

    def find_class(self, module, name):
        # Lists and floats unpickle without any global lookup, so any lookup at all
        # means the row was not written by us: refuse it before anything can run.
        raise TamperedTemplateError(f"forbidden global {module}.{name} in face templates")


def check_templates(value):
    """Return `value` as a list of templates if it is 0+ lists of 128 finite floats, else raise."""
    # An empty list is a user without a face yet: an admin made from the command
    # line, or a user whose face was reset. The gallery has nothing to add.
    if not isinstance(value, list) or not 0 <= len(value) <= MAX_STORED_TEMPLATES:
        raise TamperedTemplateError(f"face templates must be a list of at most {MAX_STORED_TEMPLATES}")
    for template in value:
        if not isinstance(template, list) or len(template) != ENCODING_SIZE:
            raise TamperedTemplateError(f"each face template must hold {ENCODING_SIZE} numbers")
        if not all(type(x) is float and math.isfinite(x) for x in template):
            raise TamperedTemplateError("face templates must be finite floats")
    return value


@functools.cache
def cipher_for(keys):
    """Return a MultiFernet for comma-separated keys (the first encrypts, all decrypt), or None."""
    if not keys:
        return None
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def is_sealed(data):
    """Return True if stored template bytes are a Fernet token rather than a bare pickle."""
    return bytes(data[:1]) == b"g"  # Fernet tokens are base64 of version byte 0x80: "gAAAAA"


def dumps(value, cipher=None):
    """Pickle a checked list of templates as builtin floats only, sealed if a cipher is given."""
    plain = [[float(x) for x in template] for template in value]
    data = pickle.dumps(check_templates(plain), protocol=pickle.HIGHEST_PROTOCOL)
    return cipher.encrypt(data) if cipher else data


def loads(data, cipher=None):
    """Open (if sealed) and unpickle stored templates without resolving any global, then check them.

    Every way stored bytes can be wrong (garbage, truncated, foreign, wrong key)
    raises TamperedTemplateError, so callers need to handle only that.
    """
    data = bytes(data)
    if cipher is None and is_sealed(data):
        raise TamperedTemplateError("face templates are encrypted but no key is set")
    if cipher is not None:
        try:
            data = cipher.decrypt(data)
        except InvalidToken as e:
            raise TamperedTemplateError("face templates do not open with the key") from e
    try:
        value = _NoGlobalsUnpickler(io.BytesIO(data)).load()
    except TamperedTemplateError:
        raise
    except Exception as e:  # noqa: BLE001 - garbage bytes fail in many ways (EOFError, ValueError...)
        raise TamperedTemplateError(f"face templates do not unpickle: {type(e).__name__}") from e
    return check_templates(value)


def reseal(data, cipher):
    """Return stored template bytes sealed with the cipher's first key (checked first if in clear)."""
    data = bytes(data)
    if is_sealed(data):
        return cipher.rotate(data)
    return cipher.encrypt(pickle.dumps(loads(data), protocol=pickle.HIGHEST_PROTOCOL))
