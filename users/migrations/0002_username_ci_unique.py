"""Usernames unique regardless of case: a unique index on lower(username).

Safe on a live table (docs/migrations.md):
- the index is built CONCURRENTLY (atomic = False), so registrations and logins go on
  during the build; a failed build leaves an invalid index that the next run drops
  before building again;
- before building, existing accounts whose usernames differ only in case are looked
  for; if there are any, the migration stops with their ids and usernames and changes
  nothing. Decide which account keeps the name, rename the other(s) (for example
  `UPDATE users_user SET username = 'alice-2' WHERE id = 42`), then migrate again.
  One registered while the index is being built makes the build fail with
  PostgreSQL's "could not create unique index ... is duplicated"; the next run names it.
- The code before this release already answers an IntegrityError on registration
  with a 400, so it keeps working once the index refuses a case duplicate.
"""

from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.models.functions import Lower

import users.models
from foundation.migration_ops import AddUniqueConstraintConcurrently

SHOWN = 50


def refuse_case_duplicates(apps, schema_editor):
    User = apps.get_model("users", "User")
    users = User.objects.using(schema_editor.connection.alias).annotate(folded=Lower("username"))
    folded = list(
        users.values("folded")
        .annotate(n=models.Count("pk"))
        .filter(n__gt=1)
        .order_by("folded")
        .values_list("folded", flat=True)[: SHOWN + 1]
    )
    if not folded:
        return
    groups: dict[str, list[str]] = {}
    for key, pk, username in (
        users.filter(folded__in=folded[:SHOWN]).order_by("folded", "pk").values_list("folded", "pk", "username")
    ):
        groups.setdefault(key, []).append(f"{username!r} (id {pk})")
    lines = [", ".join(accounts) for accounts in groups.values()]
    if len(folded) > SHOWN:
        lines.append(
            "... and more; list them all with: SELECT lower(username), array_agg(id) "
            "FROM users_user GROUP BY 1 HAVING count(*) > 1"
        )
    raise CommandError(
        "users.0002: these accounts have usernames that differ only in case, so usernames cannot be "
        "made unique regardless of case:\n  " + "\n  ".join(lines) + "\n"
        "users.0002 was not applied and changed nothing. Rename all but one account of each group, "
        "then run migrate again."
    )


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("users", "0001_initial"),
    ]

    operations = [
        migrations.AlterModelManagers(
            name="user",
            managers=[
                ("objects", users.models.CaseInsensitiveUserManager()),
            ],
        ),
        migrations.RunPython(refuse_case_duplicates, migrations.RunPython.noop, elidable=True),
        AddUniqueConstraintConcurrently(
            model_name="user",
            constraint=models.UniqueConstraint(Lower("username"), name="users_user_username_ci_unique"),
        ),
    ]
