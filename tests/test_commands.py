"""`flask users ...`: create or promote an admin, list accounts, delete one with its face data."""

import os

from models import User, db


def _user(app, name):
    with app.app_context():
        return User.by_username(name)


def test_create_admin_without_a_face_then_log_in_by_password(app, runner, kiosk):
    result = runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    assert result.exit_code == 0, result.output
    assert "created admin boss" in result.output
    with app.app_context():
        boss = User.by_username("boss")
        assert boss.is_admin and boss.face_encodings == []
    assert kiosk.password_login("boss", "s3cret pass").headers["Location"] == "/protected"


def test_create_admin_asks_again_when_the_confirmation_differs(app, runner):
    result = runner.invoke(
        args=["users", "create-admin", "boss"], input="s3cret pass\ntypo pass\ns3cret pass\ns3cret pass\n"
    )
    assert result.exit_code == 0 and "do not match" in result.output
    assert _user(app, "boss").is_admin


def test_create_admin_refuses_a_short_password_or_bad_name(app, runner):
    result = runner.invoke(args=["users", "create-admin", "boss"], input="short\nshort\n")
    assert result.exit_code == 1 and "8 to 128 characters" in result.output
    result = runner.invoke(args=["users", "create-admin", "bad name!"], input="s3cret pass\ns3cret pass\n")
    assert result.exit_code == 1 and "letters, digits" in result.output
    assert _user(app, "boss") is None


def test_create_admin_promotes_an_existing_user_without_asking(app, runner, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    result = runner.invoke(args=["users", "create-admin", "GRACE"])
    assert result.exit_code == 0 and "grace is now an admin" in result.output
    grace = _user(app, "grace")
    assert grace.is_admin
    with app.app_context():
        assert len(db.session.get(User, grace.id).face_encodings) == 1  # her face stays


def test_list_shows_every_account(runner, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    lines = runner.invoke(args=["users", "list"]).output.splitlines()
    assert lines[0].split()[:4] == ["id", "username", "role", "faces"]
    assert lines[1].split()[:4] == ["1", "grace", "user", "1"]
    assert lines[2].split()[:4] == ["2", "boss", "admin", "0"]
    assert lines[1].split()[-1] == "ok"


def test_delete_removes_row_templates_and_photo(app, runner, kiosk, photos, stored_files, user_count):
    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    result = runner.invoke(args=["users", "delete", "grace"], input="n\n")
    assert result.exit_code == 1 and user_count() == 2  # answered no
    result = runner.invoke(args=["users", "delete", "grace"], input="y\n")
    assert result.exit_code == 0 and "deleted grace" in result.output
    assert user_count() == 1 and [os.path.basename(f) for f in stored_files()] == ["2.jpg"]
    # Grace's face no longer logs anybody in.
    assert kiosk.face_login().status_code == 401


def test_delete_unknown_user_fails(runner):
    result = runner.invoke(args=["users", "delete", "nobody", "--yes"])
    assert result.exit_code == 1 and "no user called nobody" in result.output
