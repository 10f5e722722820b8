"""The WSGI entry point gunicorn serves (``backend.wsgi:app``)."""

from backend.app import configure_logging, create_app

configure_logging()
app = create_app()
