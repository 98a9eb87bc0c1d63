"""ASGI entry point for uvicorn (``obeya serve``)."""

import os
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obeya.settings")

# WhiteNoise streams static files through a sync iterator; under ASGI Django warns on every
# file. The files are small and cached by browsers, so the warning is noise in the log.
warnings.filterwarnings(
    "ignore",
    message="StreamingHttpResponse must consume synchronous iterators",
    module="django.core.handlers.asgi",
)

application = get_asgi_application()
