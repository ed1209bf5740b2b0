"""The kiosk face login: views (blueprints), the services they call, and the face engine underneath."""
