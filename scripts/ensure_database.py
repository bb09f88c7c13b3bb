"""Create the database named by DATABASE_URL if the server has none of that name.

`make test` runs `makemigrations --check` against it (Django checks the migration
history there) and pytest creates its own test databases next to it. Only a missing
database is created; an existing one is never touched.
"""

import os
import sys

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/wallet"


def main() -> int:
    params = conninfo_to_dict(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    name = params.get("dbname") or "wallet"
    # Multi-host URLs: any host that accepts writes can create it.
    params.update(dbname="postgres", connect_timeout="5", target_session_attrs="read-write")
    with psycopg.connect(**params, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return 0
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"created database {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
