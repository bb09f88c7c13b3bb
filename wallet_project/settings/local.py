"""`make run`: the embedded default. SQLite unless DATABASE_URL says otherwise."""

import os

os.environ.setdefault("DATABASE_URL", "sqlite:///" + os.path.join(os.getcwd(), "db.sqlite3"))
os.environ.setdefault("DJANGO_DEBUG", "true")

from .base import *  # noqa: F403
