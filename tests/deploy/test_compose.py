"""docker-compose.yml and etl/deploy/Dockerfile, checked without a Docker engine.

* the compose-spec JSON schema (the copy check-jsonschema vendors) on the file as written;
* compose's own parser, when Debian's `docker-compose` (v1) is installed (.ci/run installs it): `config` with
  and without the required variables;
* the structure: the services, a health check on each, the start order (depends_on conditions), no literal
  secret anywhere, the warehouse in a named volume, the image built from the Dockerfile, whose base image is the
  Airflow and Python of the pins and whose install step is the one `make venv` (so CI) runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "etl" / "deploy" / "Dockerfile"
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}
LONG_RUNNING_AIRFLOW = AIRFLOW_SERVICES - {"airflow-init"}
REQUIRED_VARS = {"AIRFLOW_ADMIN_PASSWORD", "POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_SECRET_KEY",
                 "AIRFLOW_JWT_SECRET"}
SECRETS = {name: f"test-{name.lower()}" for name in REQUIRED_VARS}
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$", re.I)
VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)")


def _raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # PyYAML resolves the anchors and `<<` merge keys as compose does


def interpolate(value, env: dict[str, str], missing: set[str]):
    """Compose's variable substitution: ${X}, ${X:-default}, ${X-default}, ${X:?err}, ${X?err}; $$ is a `$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name = m["name"] or m["bare"]
        op, arg, val = m["op"], m["arg"] or "", env.get(name)
        unset_or_empty = val is None or (val == "" and op and op.startswith(":"))
        if op in (":?", "?") and unset_or_empty:
            missing.add(name)
            return ""
        if op in (":-", "-") and unset_or_empty:
            return arg
        return val or ""

    parts = value.split("$$")
    return "$".join(VAR.sub(sub, p) for p in parts)


@pytest.fixture(scope="module")
def compose() -> dict:
    missing: set[str] = set()
    doc = interpolate(_raw(), SECRETS, missing)
    assert not missing
    return doc


@pytest.fixture(scope="module")
def pins() -> dict:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    airflow_pin = next(r for r in project["optional-dependencies"]["airflow"] if r.startswith("apache-airflow=="))
    python = re.match(r">=(\d+\.\d+)", project["requires-python"])[1]
    return {"airflow": airflow_pin.split("==")[1], "python": python}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _uv_install(command: str) -> dict:
    """The first `uv pip install` of a shell command: editable?, the project's extras, other options."""
    words = shlex.split(command.replace("$(BIN)/", ""))
    start = next(i for i in range(len(words) - 2) if words[i:i + 3] == ["uv", "pip", "install"])
    words = words[start + 3:]
    words = words[:words.index("&&")] if "&&" in words else words
    editable = "-e" in words or "--editable" in words
    target = next(w for w in words if w.startswith(".["))
    return {"editable": editable, "extras": set(target[2:-1].split(","))}


# -- the file is a valid compose file ------------------------------------------------------------------------------

def test_compose_file_validates_against_the_compose_spec_schema():
    proc = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                           "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True)
    print(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the schema applies to the interpolated file too (ports, strings that were variables)
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    missing: set[str] = set()
    jsonschema.validate(interpolate(_raw(), SECRETS, missing), schema)


def test_docker_compose_config_accepts_the_file_and_requires_the_secrets(tmp_path):
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose (Debian's v1) missing under CI: .ci/run installs it")
        pytest.skip("Debian's docker-compose (v1) not installed: apt-get install docker-compose")
    base = {k: v for k, v in os.environ.items() if k not in REQUIRED_VARS and not k.startswith("AIRFLOW")}
    ok = subprocess.run([exe, "-f", str(COMPOSE), "--project-directory", str(REPO), "config"],
                        env={**base, **SECRETS}, capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)
    assert set(resolved["services"]) == AIRFLOW_SERVICES | {"postgres", "redis"}
    assert resolved["services"]["airflow-init"]["environment"]["AIRFLOW_ADMIN_PASSWORD"] == SECRETS[
        "AIRFLOW_ADMIN_PASSWORD"]
    print(f"docker-compose config: {len(resolved['services'])} services, volumes {sorted(resolved['volumes'])}")
    for name in sorted(REQUIRED_VARS):
        refused = subprocess.run([exe, "-f", str(COMPOSE), "--project-directory", str(REPO), "config", "-q"],
                                 env={**base, **{k: v for k, v in SECRETS.items() if k != name}},
                                 capture_output=True, text=True, cwd=tmp_path)
        assert refused.returncode != 0 and f"set {name}" in refused.stderr, (name, refused.stderr)


def test_every_required_secret_has_no_default():
    missing: set[str] = set()
    interpolate(_raw(), {}, missing)
    assert missing == REQUIRED_VARS


# -- services, health, order -------------------------------------------------------------------------------------

def test_the_services_of_a_celery_deployment(compose):
    assert set(compose["services"]) == AIRFLOW_SERVICES | {"postgres", "redis"}
    commands = {name: compose["services"][name].get("command") for name in LONG_RUNNING_AIRFLOW}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                        "airflow-worker": "celery worker"}
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    assert compose["services"]["redis"]["image"].startswith("redis:")


def test_every_service_has_a_health_check(compose):
    for name, svc in compose["services"].items():
        check = svc.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        test = check["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, (name, test)
        assert {"interval", "timeout", "retries"} <= set(check), (name, check)
    api = compose["services"]["airflow-apiserver"]["healthcheck"]["test"]
    assert any("/api/v2/monitor/health" in part for part in api)


def test_start_order_uses_health_and_completion_conditions(compose):
    services = compose["services"]
    init = services["airflow-init"]["depends_on"]
    assert init == {"postgres": {"condition": "service_healthy"}}
    for name in LONG_RUNNING_AIRFLOW:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}, name
        assert deps["redis"] == {"condition": "service_healthy"}, name
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}, name
        for dep, spec in deps.items():
            assert spec["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
    # tasks report to the execution API: the worker starts once the API server answers
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    assert services["airflow-init"].get("restart") == "no"


def test_airflow_is_configured_for_celery_postgres_redis_and_fab(compose):
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == \
            "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        # the same secrets in every component (JWTs signed by the scheduler are checked by the API server)
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
            assert env[key].startswith("test-"), (name, key)
    # only the API server is published; postgres and redis stay on the compose network
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"airflow-apiserver"}


def test_init_migrates_creates_the_admin_from_the_environment_and_the_writer_pool():
    raw = _raw()["services"]["airflow-init"]
    script = "\n".join(raw["command"])
    assert "airflow db migrate" in script
    create = re.search(r"airflow users create(.*?)\n\s*airflow", script, re.S)[1]
    assert "--role Admin" in create
    assert '--password "$${AIRFLOW_ADMIN_PASSWORD}"' in create  # the container's variable, never a literal
    assert raw["environment"]["AIRFLOW_ADMIN_PASSWORD"] == "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD}"
    pool = re.search(r'WAREHOUSE_POOL = "(\w+)"', (REPO / "dags" / "market_daily.py").read_text())[1]
    assert re.search(rf'airflow pools set {pool} "\$\$\{{WAREHOUSE_WRITER_SLOTS\}}" ', script)
    assert raw["environment"]["WAREHOUSE_WRITER_SLOTS"] == "${WAREHOUSE_WRITER_SLOTS:-1}"  # one writer by default


def test_the_warehouse_backend_is_switchable_to_ducklake_in_the_same_postgres(compose):
    raw = _raw()["services"]["airflow-init"]
    assert re.search(r'if \[ "\$\$\{ETL_WAREHOUSE_BACKEND\}" = ducklake \]; then python -m etl init-lake; fi',
                     "\n".join(raw["command"]))
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["ETL_WAREHOUSE_BACKEND"] == "file"  # the default: no catalog needed
        catalog = dict(item.split("=", 1) for item in env["ETL_DUCKLAKE_CATALOG"].split())
        assert catalog["host"] == "postgres" and catalog["dbname"] == "ducklake"  # the same PostgreSQL service
        assert catalog["password"] == SECRETS["POSTGRES_PASSWORD"]
        assert env["ETL_DUCKLAKE_DATA"].startswith(env["ETL_DATA_DIR"] + "/")  # on the named volume


def test_no_literal_secret_anywhere():
    raw = _raw()

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")
        else:
            yield path, node

    for path, value in walk(raw, ""):
        key = path.rsplit(".", 1)[-1]
        if SECRET_WORDS.search(key) and isinstance(value, str):
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{path} = {value!r} is not a required variable"
        if isinstance(value, str):
            for userinfo in re.findall(r"://[^/:@\s]+:([^@\s]+)@", value):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", userinfo), f"{path}: literal password in a URL"
            assert not re.search(r"--password[= ]+['\"]?[^\s'\"$]", value), f"{path}: literal --password"


def test_the_warehouse_lives_in_a_named_volume(compose):
    named = set(compose["volumes"])
    for name in AIRFLOW_SERVICES:
        svc = compose["services"][name]
        data_dir = svc["environment"]["ETL_DATA_DIR"]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in svc["volumes"]}
        assert mounts.get(data_dir) in named, f"{name}: ETL_DATA_DIR {data_dir} is not on a named volume"
    assert "postgres-data" in named
    assert compose["services"]["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]


# -- the image -------------------------------------------------------------------------------------------------------

def test_every_airflow_service_builds_the_project_image(compose):
    images = {compose["services"][n]["image"] for n in AIRFLOW_SERVICES}
    builds = [compose["services"][n]["build"] for n in AIRFLOW_SERVICES]
    assert len(images) == 1
    assert all(b == {"context": ".", "dockerfile": "etl/deploy/Dockerfile"} for b in builds)
    assert (REPO / builds[0]["dockerfile"]).is_file()


def test_the_image_is_the_official_airflow_image_of_the_pins(compose, pins):
    froms = [rest for op, rest in _dockerfile_instructions() if op == "FROM"]
    assert froms == [f"apache/airflow:{pins['airflow']}-python{pins['python']}"]
    # the Makefile's (so CI's) interpreter is the same Python
    assert re.search(rf"^PYTHON \?= python{re.escape(pins['python'])}$", (REPO / "Makefile").read_text(), re.M)
    # the tag names what the image holds
    tag = next(iter({compose["services"][n]["image"] for n in AIRFLOW_SERVICES}))
    assert tag.endswith(f":{pins['airflow']}-python{pins['python']}")
    # the build fails if the install step moved Airflow off the pin
    runs = " ".join(rest for op, rest in _dockerfile_instructions() if op == "RUN")
    assert f"== '{pins['airflow']}'" in runs


def test_the_image_installs_the_project_as_ci_does():
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run no longer installs through `make test`"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: venv\b", makefile, re.M)
    recipe = re.search(r"^\$\(VENV\)/\.installed:.*\n((?:\t.*\n)+)", makefile, re.M)[1]
    ci_install = _uv_install(recipe)
    runs = [rest for op, rest in _dockerfile_instructions() if op == "RUN" and "uv pip install" in rest]
    assert len(runs) == 1, runs
    image_install = _uv_install(runs[0])
    # the same tool, the same editable install of the project, the same extras less the dev tools
    assert image_install["editable"] == ci_install["editable"] is True
    assert image_install["extras"] == ci_install["extras"] - {"dev"}
    assert "airflow" in image_install["extras"]
    # and what that editable install reads at run time is in the image
    copied = {p.rstrip("/").removeprefix("./") for op, rest in _dockerfile_instructions() if op == "COPY"
              for p in rest.split()[:-1] if not p.startswith("--")}
    assert {"pyproject.toml", "README.md", "etl", "dags", "sql"} <= copied
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(rest for op, rest in _dockerfile_instructions() if op == "ENV")))
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/project/dags"
    assert env["ETL_DATA_DIR"] == "/opt/airflow/warehouse"
