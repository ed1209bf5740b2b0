"""gallery notifications: on PostgreSQL, every change of a user's faces is NOTIFYed to the app processes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The payload is "<kind>:<user id>" on channel facelogin_gallery (services/gallery.py reads it):
# short, far below NOTIFY's 8000 bytes, and sent inside the changing transaction, so that the
# listeners hear it at its commit and never for a rolled-back change. Other columns (login
# counters, last_login_at) are left out: they change on every login and the faces do not.
FUNCTION = """
CREATE FUNCTION facelogin_gallery_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'learned_templates' THEN
        PERFORM pg_notify('facelogin_gallery', 'learned:' || COALESCE(NEW.user_id, OLD.user_id));
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('facelogin_gallery', 'enrol:' || NEW.id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('facelogin_gallery', 'delete:' || OLD.id);
    ELSE
        PERFORM pg_notify('facelogin_gallery', 'faces:' || NEW.id);
    END IF;
    RETURN NULL;
END
$$
"""
TRIGGERS = {
    'users': 'AFTER INSERT OR DELETE OR UPDATE OF face_encodings, faces_updated_at',
    'learned_templates': 'AFTER INSERT OR DELETE OR UPDATE OF encoding, user_id',
}


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return  # SQLite has no NOTIFY: the gallery polls the users table there
    op.execute(FUNCTION)
    for table, events in TRIGGERS.items():
        op.execute(
            f'CREATE TRIGGER {table}_gallery_notify {events} ON {table} '
            'FOR EACH ROW EXECUTE FUNCTION facelogin_gallery_notify()'
        )


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TRIGGERS:
        op.execute(f'DROP TRIGGER {table}_gallery_notify ON {table}')
    op.execute('DROP FUNCTION facelogin_gallery_notify()')
