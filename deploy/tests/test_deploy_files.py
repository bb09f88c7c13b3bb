"""The container stack's files, checked without a Docker engine.

docker-compose.yml is read with PyYAML, the Dockerfile with a small instruction parser,
gunicorn.conf.py by executing it. What is asserted is what an operator relies on: the
services exist and start in the right order (web, worker and beat only after the one-shot
migrate step succeeded and PostgreSQL and Redis are healthy), nothing but `migrate`
migrates, secrets only ever come from env files that neither git nor the image build
context can pick up, the image is multi-stage and runs as a non-root user without
compilers, and gunicorn stops gracefully within the time compose gives it.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

BASE_DIR = Path(__file__).resolve().parents[2]
DEPLOY = BASE_DIR / "deploy"
APP_SERVICES = ("web", "worker", "beat")
ALL_SERVICES = ("postgres", "redis", "migrate", *APP_SERVICES)
SECRET_NAME = re.compile(r"SECRET|KEY|PASSWORD|TOKEN|CREDENTIAL", re.IGNORECASE)
# user:password@ inside a URL
URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc|make|libpq-dev|python3-dev)\b")


# --- helpers --------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def command_text(service: dict[str, Any]) -> str:
    parts = as_list(service.get("command")) + as_list(service.get("entrypoint"))
    return " ".join(str(part) for part in parts)


def healthcheck_text(service: dict[str, Any]) -> str:
    return " ".join(str(part) for part in as_list(service.get("healthcheck", {}).get("test")))


def duration_seconds(value: str) -> float:
    """A compose duration ("45s", "1m30s", "500ms") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    assert parts and "".join(n + u for n, u in parts) == str(value), f"not a duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def example_for(env_file: str) -> Path:
    """deploy/.env -> deploy/env.example; deploy/postgres.env -> deploy/postgres.env.example."""
    path = BASE_DIR / env_file
    name = "env.example" if path.name == ".env" else path.name + ".example"
    return path.with_name(name)


def environment_items(service: dict[str, Any]) -> list[tuple[str, str | None]]:
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return [(str(k), None if v is None else str(v)) for k, v in environment.items()]
    items = []
    for entry in environment:
        name, sep, value = str(entry).partition("=")
        items.append((name, value if sep else None))
    return items


def walk_strings(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)
    elif node is not None:
        yield str(node)


class Instruction:
    def __init__(self, keyword: str, args: str) -> None:
        self.keyword = keyword
        self.args = args

    def exec_form(self) -> list[str] | None:
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, split into stages (each starts with its FROM)."""
    lines, current = [], ""
    for raw in (BASE_DIR / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment line inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    stages: list[list[Instruction]] = [[]]
    for line in lines:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def dockerignore_patterns() -> list[str]:
    lines = (BASE_DIR / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def dockerignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a path is out if it or a parent matches."""
    candidates = [path] + ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 1)]
    ignored = False
    for pattern in dockerignore_patterns():
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern[1:] if negated else pattern)
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def load_gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in [n for n in os.environ if n.startswith(("GUNICORN_", "WEB_CONCURRENCY"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))


def load_healthcheck() -> dict[str, Any]:
    return runpy.run_path(str(DEPLOY / "healthcheck.py"))


# --- docker-compose.yml: services and start order -------------------------------------


def test_compose_defines_every_service(services):
    assert set(ALL_SERVICES) <= set(services), f"missing: {set(ALL_SERVICES) - set(services)}"


def test_database_and_redis_images_are_the_supported_majors(services):
    assert str(services["postgres"]["image"]).startswith("postgres:15")
    assert str(services["redis"]["image"]).startswith("redis:7")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_a_successful_migration_and_healthy_backends(services, name):
    depends = services[name]["depends_on"]

    assert isinstance(depends, dict), "depends_on needs the long form to carry conditions"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_migrate_waits_for_a_healthy_postgres_and_runs_once(services):
    migrate = services["migrate"]

    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    # A one-shot step: restarting it would never let dependants see "completed".
    assert str(migrate.get("restart", "no")) == "no"
    assert "migrate" in command_text(migrate)


def test_migrate_service_runs_manage_py_migrate(services):
    command = as_list(services["migrate"]["command"])
    script = BASE_DIR / command[-1]

    assert script.is_file(), f"{command} does not name a script in the image"
    text = script.read_text()
    assert "python manage.py migrate --noinput" in text
    assert "set -eu" in text, "a failed step must fail the service (and so hold back web)"


def test_no_service_but_migrate_migrates(services):
    for name, service in services.items():
        if name != "migrate":
            assert "migrate" not in command_text(service), f"{name} runs migrations"


@pytest.mark.parametrize("name", ["postgres", "redis", "web"])
def test_healthchecks_exist(services, name):
    healthcheck = services[name].get("healthcheck")

    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable"), f"{name}'s healthcheck is disabled"
    assert healthcheck_text(services[name]).strip()


def test_healthchecks_probe_the_right_thing(services):
    assert "pg_isready" in healthcheck_text(services["postgres"])
    assert "redis-cli" in healthcheck_text(services["redis"])
    assert "ping" in healthcheck_text(services["redis"])
    web = healthcheck_text(services["web"])
    assert "deploy/healthcheck.py" in web
    assert '"/healthz"' in (DEPLOY / "healthcheck.py").read_text()


def test_postgres_data_lives_on_a_named_volume(compose, services):
    mounts = [str(m) for m in services["postgres"]["volumes"]]
    volume = next(m.split(":")[0] for m in mounts if m.endswith(":/var/lib/postgresql/data"))

    assert volume in (compose.get("volumes") or {})


def test_postgres_and_redis_are_not_published(compose, services):
    for name in ("postgres", "redis"):
        assert not services[name].get("ports"), f"{name} is published on the host"
        for network in as_list(services[name].get("networks")):
            assert compose["networks"][network].get("internal") is True


def test_web_publishes_gunicorns_port_on_loopback_only(services, monkeypatch):
    config = load_gunicorn_config(monkeypatch)
    port = config["bind"].rsplit(":", 1)[1]

    assert [str(p) for p in services["web"]["ports"]] == [f"127.0.0.1:{port}:{port}"]


def test_web_gets_longer_than_gunicorns_graceful_timeout_to_stop(services, monkeypatch):
    env = read_env_file(DEPLOY / "env.example")
    config = load_gunicorn_config(
        monkeypatch, **{k: v for k, v in env.items() if k.startswith(("GUNICORN_", "WEB_"))}
    )
    grace = duration_seconds(services["web"]["stop_grace_period"])

    # SIGKILL must not land while a worker is still finishing a money transaction.
    assert grace >= config["graceful_timeout"] + 5


def test_worker_and_beat_override_the_images_http_healthcheck(services):
    # The image's HEALTHCHECK probes HTTP; worker and beat serve none.
    assert "inspect ping" in healthcheck_text(services["worker"])
    assert services["beat"]["healthcheck"].get("disable") is True


def test_beat_runs_with_a_writable_schedule_file(services):
    command = as_list(services["beat"]["command"])
    schedule = command[command.index("--schedule") + 1]

    assert schedule.startswith("/tmp/")
    assert "/tmp" in [str(t).split(":")[0] for t in as_list(services["beat"].get("tmpfs"))]


# --- secrets --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["migrate", *APP_SERVICES])
def test_app_services_read_settings_from_the_env_file(services, name):
    assert "deploy/.env" in as_list(services[name]["env_file"])


def test_every_env_file_has_a_committed_example(services):
    env_files = {f for service in services.values() for f in as_list(service.get("env_file"))}

    assert env_files, "no service reads an env file"
    for env_file in env_files:
        assert env_file.startswith("deploy/"), env_file
        assert example_for(env_file).is_file(), f"{env_file}: no {example_for(env_file).name}"


def test_no_secret_is_written_inline(services, compose):
    for name, service in services.items():
        for key, value in environment_items(service):
            assert not SECRET_NAME.search(key), f"{name}: {key} belongs in an env file"
            assert not URL_CREDENTIALS.search(value or ""), f"{name}: credentials in {key}"
    for text in walk_strings(compose):
        assert not URL_CREDENTIALS.search(text), f"credentials in docker-compose.yml: {text!r}"


def test_examples_hold_placeholders_not_secrets(services):
    for env_file in {f for s in services.values() for f in as_list(s.get("env_file"))}:
        for key, value in read_env_file(example_for(env_file)).items():
            if SECRET_NAME.search(key):
                assert value in ("", "CHANGE_ME"), f"{example_for(env_file).name}: {key}={value!r}"
            match = URL_CREDENTIALS.search(value)
            if match:
                assert ":CHANGE_ME@" in value, f"{example_for(env_file).name}: {key} has a password"


def test_app_env_example_passes_the_production_settings_checks():
    """deploy/env.example lists what production settings refuse to start without."""
    env = read_env_file(DEPLOY / "env.example")

    for name in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS", "REDIS_URL"):
        assert name in env, f"deploy/env.example does not mention {name}"
    assert env["DATABASE_URL"].startswith("postgres://")


def settings_variables() -> set[str]:
    """Every environment variable wallet_project/settings/*.py reads, found in the source.

    A read is the first argument of env(...), env.<cast>(...), env_items(...), secret(...),
    os.environ.get(...) or os.getenv(...), or the left side of `"NAME" in env`.
    """
    readers = {"env", "env_items", "secret", "getenv"}
    names = set()
    for path in (BASE_DIR / "wallet_project" / "settings").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = ast.unparse(func.value if isinstance(func, ast.Attribute) else func)
                called_name = func.attr if isinstance(func, ast.Attribute) else called
                is_read = called in ("env", "os.environ") or called_name in readers
                first = node.args[0]
                if is_read and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
            elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In):
                container = ast.unparse(node.comparators[0])
                if container in ("env", "os.environ") and isinstance(node.left, ast.Constant):
                    names.add(node.left.value)
    return names


def test_env_example_documents_every_variable_the_settings_read():
    documented = set(read_env_file(BASE_DIR / ".env.example"))
    read = settings_variables()

    # The scan itself finds reads of each kind (typed, list, secret, presence).
    assert {"DATABASE_URL", "DB_CONN_MAX_AGE", "DJANGO_ALLOWED_HOSTS", "JWT_SIGNING_KEY", "REDIS_URL"} <= read
    assert not read - documented, f".env.example does not document {sorted(read - documented)}"


def test_app_env_example_leaves_the_metrics_directory_to_the_image():
    # prometheus_client switches to multiprocess mode when the variable merely exists: an
    # empty value would put its files in the working directory (/app, read-only).
    assert "PROMETHEUS_MULTIPROC_DIR" not in read_env_file(DEPLOY / "env.example")


@pytest.mark.parametrize("env_file", ["deploy/.env", "deploy/postgres.env", "deploy/migrate.env", ".env"])
def test_filled_in_env_files_stay_out_of_the_image(env_file):
    assert dockerignored(env_file), f"{env_file} would be sent to the build (COPY . .)"


@pytest.mark.parametrize(
    "needed",
    [
        "manage.py",
        "gunicorn.conf.py",
        "requirements.txt",
        "wallet_project/wsgi.py",
        "deploy/migrate.sh",
        "deploy/entrypoint.sh",
        "deploy/healthcheck.py",
        ".env.example",
    ],
)
def test_the_image_still_gets_what_it_runs(needed):
    assert not dockerignored(needed)


def test_dockerignore_matcher_follows_docker_rules():
    # The matcher above is what the two previous tests trust; pin its semantics.
    assert dockerignored(".git/HEAD")
    assert dockerignored("transfers/__pycache__/x.pyc")
    assert not dockerignored("transfers/services.py")


@pytest.mark.parametrize("env_file", ["deploy/.env", "deploy/postgres.env", "deploy/migrate.env"])
def test_filled_in_env_files_are_ignored_by_git(env_file):
    # Read deploy/.gitignore itself, so the check holds in a checkout and in an unpacked copy.
    patterns = [
        line.strip()
        for line in (BASE_DIR / "deploy" / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    name = Path(env_file).name

    assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), (
        f"git would offer to commit {env_file}"
    )


# --- Dockerfile -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    found = [stage for stage in dockerfile_stages() if stage]
    return [stage for stage in found if stage[0].keyword == "FROM"]


def final(stages) -> list[Instruction]:
    return stages[-1]


def instructions(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


def test_dockerfile_is_multi_stage(stages):
    assert len(stages) >= 2
    assert "COPY --from=" in " ".join(f"COPY {i.args}" for i in instructions(final(stages), "COPY"))


def test_final_stage_is_slim_python(stages):
    args = {}
    for line in (BASE_DIR / "Dockerfile").read_text().splitlines():
        if line.startswith("ARG ") and "=" in line:
            name, _, value = line[4:].partition("=")
            args[name.strip()] = value.strip()
    image = final(stages)[0].args.split()[0]
    image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)

    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image


def test_final_stage_runs_as_a_non_root_user(stages):
    users = instructions(final(stages), "USER")

    assert users, "the final stage never switches user"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0")


def test_final_stage_installs_no_compiler(stages):
    for run in instructions(final(stages), "RUN"):
        if "apt-get" in run.args or "apk" in run.args:
            assert not COMPILERS.search(run.args), f"compiler in the runtime stage: {run.args}"


def test_image_has_a_healthcheck_on_healthz(stages):
    healthchecks = instructions(final(stages), "HEALTHCHECK")

    assert healthchecks and "NONE" not in healthchecks[-1].args.upper()
    assert "deploy/healthcheck.py" in healthchecks[-1].args or "/healthz" in healthchecks[-1].args


def test_default_command_is_gunicorn_with_the_config_file(stages):
    cmd = instructions(final(stages), "CMD")[-1].exec_form()

    # Exec form: gunicorn (not a shell) receives SIGTERM and shuts down gracefully.
    assert cmd == ["gunicorn", "-c", "gunicorn.conf.py", "wallet_project.wsgi"]


def test_image_never_migrates_on_start(stages):
    for keyword in ("CMD", "ENTRYPOINT"):
        for instruction in instructions(final(stages), keyword):
            assert "migrate" not in instruction.args
    entrypoint = instructions(final(stages), "ENTRYPOINT")[-1].exec_form()
    assert entrypoint, "ENTRYPOINT must be in exec form"
    script = (BASE_DIR / entrypoint[0]).read_text()
    assert "migrate" not in re.sub(r"#.*", "", script)
    assert 'exec "$@"' in script


def test_prometheus_multiprocess_dir_is_a_tmp_dir(stages):
    env = " ".join(i.args for i in instructions(final(stages), "ENV"))
    match = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", env)

    assert match and match.group(1).startswith("/tmp/")


def test_no_secret_in_image_environment(stages):
    for stage in stages:
        for instruction in instructions(stage, "ENV") + instructions(stage, "ARG"):
            for name in re.findall(r"(\w+)=", instruction.args) or instruction.args.split()[:1]:
                assert not SECRET_NAME.search(name), f"{instruction.keyword} {name} is baked into the image"


def build_time_collectstatic(stages) -> Instruction:
    runs = [run for run in instructions(final(stages), "RUN") if "collectstatic" in run.args]
    assert len(runs) == 1
    return runs[0]


def test_build_time_keys_are_visibly_throwaway(stages):
    run = build_time_collectstatic(stages)
    for name in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"):
        value = re.search(rf"{name}=(\S+)", run.args).group(1)
        assert value.startswith("build-only"), f"{name} at build time must be a throwaway value"


def test_build_time_collectstatic_satisfies_production_settings(stages, tmp_path):
    """Runs the Dockerfile's collectstatic line (dry run) so a settings check never breaks the build."""
    run = build_time_collectstatic(stages)
    words = shlex.split(run.args.split("&&")[0])
    assignments = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
    command = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    assert command[:3] == ["python", "manage.py", "collectstatic"]
    # The RUN line's environment: the image's ENV up to that point, not this test run's.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "JWT_", "DATABASE_URL", "PROMETHEUS_", "prometheus_"))
    }
    env.update(assignments, DJANGO_SETTINGS_MODULE="wallet_project.settings.production")

    metric_files_before = set(BASE_DIR.glob("*.db"))

    result = subprocess.run(
        [sys.executable, *command[1:], "--dry-run"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "static files copied" in result.stdout
    # prometheus_client in multiprocess mode would have left counter_<pid>.db files in a layer.
    assert set(BASE_DIR.glob("*.db")) == metric_files_before


def test_multiprocess_dir_is_set_only_after_the_build_steps(stages):
    stage = final(stages)
    collect = stage.index(build_time_collectstatic(stages))
    env_at = [n for n, i in enumerate(stage) if i.keyword == "ENV" and "PROMETHEUS_MULTIPROC_DIR" in i.args]

    # Its mere presence (even empty) switches prometheus_client to files in that directory.
    assert env_at and min(env_at) > collect
    assert "PROMETHEUS_MULTIPROC_DIR" not in build_time_collectstatic(stages).args


# --- gunicorn.conf.py -----------------------------------------------------------------


def test_gunicorn_defaults_are_sensible(monkeypatch):
    config = load_gunicorn_config(monkeypatch)

    # Two sync workers per core, as measured in docs/performance.md.
    assert config["workers"] == 2 * (os.cpu_count() or 1)
    assert config["timeout"] > 0
    assert 0 < config["graceful_timeout"] <= 120
    assert config["bind"].endswith(":8000")
    assert callable(config.get("child_exit")), "Prometheus multiprocess clean-up hook is missing"


def test_gunicorn_reads_its_sizes_from_the_environment(monkeypatch):
    config = load_gunicorn_config(
        monkeypatch, WEB_CONCURRENCY="3", GUNICORN_TIMEOUT="20", GUNICORN_GRACEFUL_TIMEOUT="25"
    )

    assert (config["workers"], config["timeout"], config["graceful_timeout"]) == (3, 20, 25)


def test_a_lock_wait_gives_up_before_gunicorn_kills_the_worker(monkeypatch):
    env = read_env_file(DEPLOY / "env.example")
    config = load_gunicorn_config(monkeypatch, GUNICORN_TIMEOUT=env.get("GUNICORN_TIMEOUT", "30"))

    # A request stuck on a wallet lock must end as 503 service_busy, not as a killed worker.
    assert int(env["DB_LOCK_TIMEOUT_MS"]) / 1000 < config["timeout"]


# --- deploy/healthcheck.py ------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        ("wallet.example.com,api.example.com", "wallet.example.com"),
        (" , *,wallet.example.com", "wallet.example.com"),
        (".example.com", "health.example.com"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_healthcheck_sends_an_allowed_host(allowed, expected):
    assert load_healthcheck()["probe_host"](allowed) == expected


@pytest.mark.parametrize(("bind", "port"), [("0.0.0.0:8000", 8000), ("[::]:9000", 9000), (":8001", 8001)])
def test_healthcheck_finds_gunicorns_port(bind, port):
    assert load_healthcheck()["port_of"](bind) == port


@pytest.mark.django_db
def test_healthcheck_passes_against_the_app_with_production_hosts(live_server, settings, monkeypatch):
    settings.ALLOWED_HOSTS = ["wallet.example.com"]
    monkeypatch.setenv("GUNICORN_BIND", f"127.0.0.1:{live_server.url.rsplit(':', 1)[1]}")
    check = load_healthcheck()["check"]

    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "wallet.example.com")
    assert check() == 0
    # The bare address a naive probe would send is refused by the production host check.
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "127.0.0.1")
    assert check() == 1
