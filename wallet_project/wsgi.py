import os

from django.core.wsgi import get_wsgi_application

from foundation.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings.production")

# Before the handler is built: the Django instrumentation adds its middleware then.
configure_tracing()

application = get_wsgi_application()
