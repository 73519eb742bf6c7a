"""The demo site under an ASGI server: ``uvicorn project.asgi:application``.

The async demo view (``/demo/async/<slug>/``) runs on the server's event loop there; under
``runserver`` (WSGI) Django runs it in a loop of its own per request.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from oauthconn.asgi import close_pools_at_shutdown  # noqa: E402 - after the settings module

application = close_pools_at_shutdown(get_asgi_application())
