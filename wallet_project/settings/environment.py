"""How the settings read the process environment: `env` (django-environ) and two small readers.

Every settings module reads its variables through `env` with a type and a default:
`env.bool`, `env.int`, `env.float`, `env.str`. Booleans accept true/false, on/off,
yes/no, y, ok and integers (0 is false); `.env.example` documents every variable.

No .env file is read, in any environment: the process environment is the only source
(twelve-factor). Production gets its variables from the orchestrator (docker compose loads
deploy/.env), and a file silently picked up from the working directory could override
them; for `make run`, export the variables in the shell.
"""

import os

import environ

env = environ.Env()


def env_items(name: str, default: list[str]) -> list[str]:
    """A comma-separated variable as a list: items stripped, blank ones dropped.

    On top of `env.list`, which keeps the spaces around an item and a blank item between
    two commas: "a.example.com, b.example.com," is two hosts here, and a blank
    DJANGO_ALLOWED_HOSTS is an empty list, which the deploy check reports (security.W020)
    instead of taking [""] for a configured host.
    """
    return [item for item in env.list(name, cast=str.strip, default=default) if item]


def secret(name: str, default: str = "") -> str:
    """A key or token exactly as set in the environment (`default` when unset).

    Read from os.environ, not through `env`: django-environ takes a value that starts with
    "$" for the name of another variable and returns that one's value instead (its "proxy
    value" feature, always on), and a random key may start with "$" (Django's
    get_random_secret_key() draws from characters that include it). A key replaced by
    another variable's value, or by the empty default, must not happen silently.
    """
    return os.environ.get(name, default)
