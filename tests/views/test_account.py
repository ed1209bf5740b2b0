"""Several face templates per user: add (same person only), remove, and matching uses the closest."""

from facelogin.services.gallery import get_gallery
from models import User, db, utcnow


def _templates(app):
    with app.app_context():
        return User.by_username("grace").face_encodings


def test_add_another_photo_of_the_same_person(app, grace_in, media):
    response = grace_in.add_photo(media["grace_altered"])
    assert response.status_code == 302 and len(_templates(app)) == 2
    page = grace_in.client.get("/protected").data
    assert b"knows you from 2 photos" in page and b"Remove photo 2" in page


def test_the_form_names_the_photo_formats_it_takes(grace_in):
    page = grace_in.client.get("/protected").data
    assert b'accept="image/jpeg,image/png,image/webp"' in page and b"A JPEG, PNG or WebP photo" in page


def test_the_file_input_and_its_button_are_announced_differently(grace_in):
    import re

    page = grace_in.client.get("/protected").get_data(as_text=True)
    form = page[page.index('enctype="multipart/form-data"') :]
    form = form[: form.index("</form>")]
    (label,) = re.findall(r'<label for="photo">(.*?)</label>', form)
    (button,) = re.findall(r"<button[^>]*>(.*?)</button>", form)
    assert label != button, form  # a screen reader said "Add another photo" for both


def test_photo_of_someone_else_is_refused(app, grace_in, photos):
    response = grace_in.add_photo(photos["luis"])
    assert response.status_code == 400 and b"does not look like your other photos" in response.data
    assert len(_templates(app)) == 1


def test_photo_without_one_face_is_refused(app, grace_in, media):
    response = grace_in.add_photo(media["two_faces"])
    assert response.status_code == 400 and b"We found 2 faces" in response.data


def test_at_most_max_templates(app, grace_in, media):
    app.config["MAX_TEMPLATES"] = 2
    grace_in.add_photo(media["grace_altered"])
    response = grace_in.add_photo(media["grace_altered"])
    assert response.status_code == 409 and b"remove one before adding another" in response.data
    assert len(_templates(app)) == 2


def test_remove_keeps_at_least_one(app, grace_in, media):
    grace_in.add_photo(media["grace_altered"])
    first = _templates(app)[0]
    assert grace_in.client.post("/protected/faces/2/delete").status_code == 302
    assert _templates(app) == [first]
    last = grace_in.client.post("/protected/faces/1/delete")
    assert last.status_code == 400 and b"Keep at least one photo" in last.data
    assert grace_in.client.post("/protected/faces/7/delete").status_code == 404


def test_matching_uses_the_closest_template(app, kiosk, grace_in, media):
    # Replace the registration template with a far one, keep a real second one:
    # the login must succeed on the second template.
    grace_in.add_photo(media["grace_altered"])
    with app.app_context():
        user = User.by_username("grace")
        user.face_encodings = [[0.5] * 128, user.face_encodings[1]]
        user.faces_updated_at = utcnow()
        db.session.commit()
    grace_in.client.post("/logout")
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_faces_pages_need_login(client):
    assert client.post("/protected/faces").status_code == 302
    assert client.post("/protected/faces/1/delete").status_code == 302


def test_add_another_photo_with_the_kiosk_camera(app, grace_in, media):
    grace_in.look(media["grace_altered"])  # what the kiosk camera sees now
    response = grace_in.client.post("/protected/faces/capture")
    assert response.headers["Location"] == "/protected/faces/camera" and len(_templates(app)) == 1  # not yet
    response = grace_in.client.post("/protected/faces/camera")  # "Add this photo"
    assert response.headers["Location"] == "/protected" and len(_templates(app)) == 2
    grace_in.look(media["luis_frame"])  # somebody else in front of the camera
    refused = grace_in.client.post("/protected/faces/capture")
    assert refused.status_code == 400 and b"does not look like your other photos" in refused.data
    assert len(_templates(app)) == 2


def test_learned_templates_are_shown_and_removed_by_their_owner_only(app, kiosk, photos, blink_media):
    app.config["LIVENESS"] = "blink"  # a live login learns
    kiosk.register("grace", photos["grace"])
    kiosk.look(blink_media["grace_blinks"])
    assert kiosk.face_login().headers["Location"] == "/protected"
    page = kiosk.client.get("/protected").get_data(as_text=True)
    assert "Learned at your logins" in page and "at your login from 127.0.0.1" in page
    assert 'action="/protected/learned/1/delete"' in page
    kiosk.client.post("/logout")
    kiosk.register("luis", photos["luis"])
    kiosk.password_login("luis", "correct horse")
    assert kiosk.client.post("/protected/learned/1/delete").status_code == 404  # not his
    kiosk.client.post("/logout")
    kiosk.password_login("grace", "correct horse")
    assert kiosk.client.post("/protected/learned/1/delete").headers["Location"] == "/protected"
    assert b"None learned yet" in kiosk.client.get("/protected").data
    with app.app_context():
        assert len(get_gallery().index().only(User.by_username("grace").id)) == 1
