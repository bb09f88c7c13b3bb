#!/usr/bin/env python
import os
import sys


def main() -> None:
    # --settings must win before anything (tracing set-up) reads the settings.
    for arg in sys.argv[1:]:
        if arg.startswith("--settings="):
            os.environ["DJANGO_SETTINGS_MODULE"] = arg.split("=", 1)[1]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings.local")
    from django.core.management import execute_from_command_line

    from foundation.tracing import command_span, configure_tracing

    # runserver and management commands trace like the WSGI app does.
    configure_tracing()
    with command_span(sys.argv):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
