"""The suite runs every folder's tests, and the import layers know every app: a new app
whose tests `make test` never collects, or whose imports lint-imports never checks, fails
here instead of passing unseen."""

from __future__ import annotations

import configparser
from pathlib import Path

from django.apps import apps

BASE_DIR = Path(__file__).resolve().parents[2]


def _ini(name: str, section: str, option: str) -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(BASE_DIR / name)
    return parser.get(section, option).split()


def test_every_tests_folder_is_in_the_test_paths():
    folders = {path.parent.name for path in BASE_DIR.glob("*/tests") if path.is_dir()}
    assert folders, "no tests folders found"
    assert folders <= set(_ini("pytest.ini", "pytest", "testpaths"))


def test_every_app_of_the_project_is_a_layer():
    project_apps = {config.name for config in apps.get_app_configs() if (BASE_DIR / config.name).is_dir()}
    layers = set(_ini(".importlinter", "importlinter:contract:layers", "layers"))
    roots = set(_ini(".importlinter", "importlinter", "root_packages"))
    assert project_apps <= layers == roots
