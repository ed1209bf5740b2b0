"""Forms: field rules and messages; every form carries Flask-WTF's CSRF token."""

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import InputRequired, Length, Optional, Regexp

from facelogin.services.sessions import PASSWORD_HELP, PASSWORD_LENGTH, USERNAME_HELP, USERNAME_RULE

# The photos faces.read_image accepts (it checks the format in the file, not the name): the browser offers these.
PHOTO_TYPES = {"accept": "image/jpeg,image/png,image/webp"}


class ActionForm(FlaskForm):
    """A button-only form (logout, admin actions): just the CSRF token."""


class FaceLoginForm(FlaskForm):
    """The face login: a button, plus a username and password in the modes that ask for them."""

    username = StringField("Username", validators=[Optional(), Length(max=64)])
    password = PasswordField("Password", validators=[Optional(), Length(max=PASSWORD_LENGTH[1])])
    nonce = HiddenField(validators=[Optional(), Length(max=64)])  # binds the attempt to its challenge

    def missing(self, mode):
        """Return the message for a field that `mode` needs but the form lacks, else None."""
        if mode != "face" and not self.username.data:
            return "Enter your username"
        if mode == "face+password" and not self.password.data:
            return "Enter your password"
        return None


class AccountForm(FlaskForm):
    """Username and password of a new account."""

    username = StringField(
        "Username",
        validators=[
            InputRequired("Enter a username"),
            Regexp(rf"\A{USERNAME_RULE.pattern}\Z", message=USERNAME_HELP),
        ],
    )
    password = PasswordField(
        "Password",
        validators=[
            InputRequired("Enter a password"),
            Length(*PASSWORD_LENGTH, PASSWORD_HELP),
        ],
    )


class RegisterForm(AccountForm):
    """Username, password and a face photo."""

    photo = FileField(
        "Photo of your face", validators=[FileRequired("Choose a photo of your face")], render_kw=PHOTO_TYPES
    )


class PhotoForm(FlaskForm):
    """One more photo of the logged-in user."""

    photo = FileField(
        "Another photo of your face", validators=[FileRequired("Choose a photo of your face")], render_kw=PHOTO_TYPES
    )


class PasswordLoginForm(FlaskForm):
    """The password fallback, available in every login mode."""

    username = StringField("Username", validators=[InputRequired("Enter your username")])
    password = PasswordField("Password", validators=[InputRequired("Enter your password")])


class PasswordCheckForm(FlaskForm):
    """The logged-in person's password again, before an action that cannot be undone."""

    password = PasswordField(
        "Your password", validators=[InputRequired("Enter your password"), Length(max=PASSWORD_LENGTH[1])]
    )


def posted_pictures():
    """Return readers of the camera pictures the kiosk browser posted as `frame` files, in order."""
    return [f.read for f in request.files.getlist("frame") if f.filename]


def first_error(form):
    """Return the first validation message of `form`, for the page's single error line."""
    for messages in form.errors.values():
        if messages:
            return messages[0]
    return None
