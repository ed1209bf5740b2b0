"""Forms: field rules and messages; every form carries Flask-WTF's CSRF token."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length, Optional, Regexp


class ActionForm(FlaskForm):
    """A button-only form (logout, admin actions): just the CSRF token."""


class FaceLoginForm(FlaskForm):
    """The face login: a button, plus a username and password in the modes that ask for them."""

    username = StringField("Username", validators=[Optional(), Length(max=64)])
    password = PasswordField("Password", validators=[Optional(), Length(max=128)])

    def missing(self, mode):
        """Return the message for a field that `mode` needs but the form lacks, else None."""
        if mode != "face" and not self.username.data:
            return "Enter your username"
        if mode == "face+password" and not self.password.data:
            return "Enter your password"
        return None


class RegisterForm(FlaskForm):
    """Username, password and a face photo."""

    username = StringField("Username", validators=[
        InputRequired("Enter a username"),
        Length(3, 64, "Use 3 to 64 characters for your username"),
        Regexp(r"\A[A-Za-z0-9_.-]+\Z",
               message="Use only letters, digits, dots, dashes and underscores in your username"),
    ])
    password = PasswordField("Password", validators=[
        InputRequired("Enter a password"),
        Length(8, 128, "Use 8 to 128 characters for your password"),
    ])
    photo = FileField("Photo of your face", validators=[FileRequired("Choose a photo of your face")])


class PhotoForm(FlaskForm):
    """One more photo of the logged-in user."""

    photo = FileField("Another photo of your face", validators=[FileRequired("Choose a photo of your face")])


class PasswordLoginForm(FlaskForm):
    """The password fallback, available in every login mode."""

    username = StringField("Username", validators=[InputRequired("Enter your username")])
    password = PasswordField("Password", validators=[InputRequired("Enter your password")])


def first_error(form):
    """Return the first validation message of `form`, for the page's single error line."""
    for messages in form.errors.values():
        if messages:
            return messages[0]
    return None
