"""Two operator groups for the four-eyes rule: "Adjustment makers" propose adjustments,
"Adjustment checkers" approve or reject them. An administrator puts each operator in one
(docs/operations.md); nobody should be in both, and the services refuse a self-approval
anyway.

Permissions are normally created after all migrations (post_migrate), so this creates
the two it needs itself, the way post_migrate would (same content type, codename, name).
"""

from django.db import migrations

GROUPS = {
    "Adjustment makers": ["propose_adjustment", "view_adjustmentproposal"],
    "Adjustment checkers": ["approve_adjustment", "view_adjustmentproposal"],
}
PERMISSION_NAMES = {
    "propose_adjustment": "Can propose a balance adjustment",
    "approve_adjustment": "Can approve or reject a balance adjustment",
    "view_adjustmentproposal": "Can view adjustment proposal",
}


def create_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="corrections", model="adjustmentproposal")
    for group_name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for codename in codenames:
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type, codename=codename, defaults={"name": PERMISSION_NAMES[codename]}
            )
            group.permissions.add(permission)


def delete_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("corrections", "0002_decisions_final"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_groups, delete_groups),
    ]
