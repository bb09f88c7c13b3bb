"""Migration operations the project adds to Django's: indexes and unique constraints
built without blocking writes."""

from django.contrib.postgres import operations as postgres_operations
from django.db import NotSupportedError
from django.db.migrations.operations import AddConstraint


class AddIndexConcurrently(postgres_operations.AddIndexConcurrently):
    """Django's AddIndexConcurrently, made safe to run again and printable anywhere.

    A build that fails (a lock timeout, a cancelled statement) leaves an INVALID index of
    that name behind, on which a plain re-run fails; each run drops it first
    (CONCURRENTLY, IF EXISTS). sqlmigrate, which only prints the statements, may run it
    inside a transaction (the migration linter does).
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            self._ensure_not_in_transaction(schema_editor)
            name = schema_editor.quote_name(self.index.name)
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def _ensure_not_in_transaction(self, schema_editor) -> None:
        if not schema_editor.collect_sql:
            super()._ensure_not_in_transaction(schema_editor)


class AddUniqueConstraintConcurrently(AddConstraint):
    """AddConstraint for a UniqueConstraint that PostgreSQL keeps as a unique index (one
    over expressions such as Lower("username"), or with a condition), built with
    CREATE UNIQUE INDEX CONCURRENTLY: reads and writes go on during the build.

    Django has AddIndexConcurrently for plain indexes but no concurrent operation for
    unique constraints, and django-pg-migration-tools (which has one) sets lock_timeout
    to 0 for the build, where deploy/migrate.sh deliberately keeps a short one and retries.

    Use it in a migration with `atomic = False`. A build that fails (a duplicate row, a
    lock timeout) leaves an INVALID index behind; each run therefore drops an index of
    that name first, so the retry builds it afresh.
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        self._ensure_not_in_transaction(schema_editor)
        create = str(self.constraint.create_sql(model, schema_editor))
        prefix = "CREATE UNIQUE INDEX "
        if not create.startswith(prefix):
            raise ValueError(f"{self.constraint.name} is not kept as a unique index; use AddConstraint")
        schema_editor.execute(self._drop_sql(schema_editor))
        schema_editor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {create.removeprefix(prefix)}")

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            self._ensure_not_in_transaction(schema_editor)
            schema_editor.execute(self._drop_sql(schema_editor))

    def _drop_sql(self, schema_editor) -> str:
        return f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.constraint.name)}"

    def _ensure_not_in_transaction(self, schema_editor) -> None:
        # sqlmigrate (collect_sql) only prints the statements, so it may run anywhere.
        if schema_editor.connection.in_atomic_block and not schema_editor.collect_sql:
            raise NotSupportedError(f"{type(self).__name__} needs a migration with atomic = False")

    def describe(self) -> str:
        return f"Concurrently create unique index {self.constraint.name} on model {self.model_name}"
