"""ASGI entry point for uvicorn (``obeya serve``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obeya.settings")

application = get_asgi_application()
