"""Security (issue 4): no credentials in the repository, no Airflow with a default admin password outside local
standalone. (Names from config and data reaching paths and SQL: tests/reliability/test_bad_input.py C01-C06.)"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import REPO

CONFIG_SUFFIXES = {".yml", ".yaml", ".env", ".ini", ".cfg", ".toml", ".json", ".sh", ".conf", ".txt", ".md"}
CONFIG_NAMES = {"Makefile", "Dockerfile", ".env", "docker-compose.yml", "compose.yml"}

# a secret written into a file (key material, cloud keys, tokens)
KEY_MATERIAL = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{36}"
                          r"|xox[abpr]-[\w-]{10,}|sk-[A-Za-z0-9]{32,}")
# `password: hunter2`, `POSTGRES_PASSWORD=secret`, `token = "abc..."`: a literal value, not ${VAR}, $VAR or <...>
LITERAL_SECRET = re.compile(
    r"""(?ix)(?<![\w${.])[\w.]*(password|passwd|secret|token|api[_-]?key)\w*["']?\s*[:=]\s*["']?
        (?!\$|<|\{\{|\*|none\b|null\b|false\b|true\b|["']?\s*$|["']?\s*\#)[^\s"',}]{3,}""")
# user:password@host in a URL, with a literal password
URL_PASSWORD = re.compile(r"://[\w.-]+:(?!\$|\{)[^@/\s]{3,}@")
PY_LITERAL_SECRET = re.compile(r"""(?i)\b\w*(password|secret|token|api_key)\w*\s*=\s*["'][^"'{}$]{4,}["']""")


def repo_files() -> list[str]:
    """Tracked files and the untracked ones that would be committed (git ls-files is read-only)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return sorted({f for f in out if f and (REPO / f).is_file()})


def _text(rel: str) -> str | None:
    try:
        return (REPO / rel).read_text()
    except (UnicodeDecodeError, OSError):
        return None


def _findings() -> list[str]:
    found = []
    for rel in repo_files():
        if rel.startswith("tests/reliability/test_security.py"):
            continue
        text = _text(rel)
        if text is None:
            continue
        name = rel.rsplit("/", 1)[-1]
        is_config = name in CONFIG_NAMES or name.startswith("Dockerfile") or any(
            name.endswith(s) for s in CONFIG_SUFFIXES)
        for number, line in enumerate(text.splitlines(), 1):
            if KEY_MATERIAL.search(line):
                found.append(f"{rel}:{number}: key material")
            if URL_PASSWORD.search(line):
                found.append(f"{rel}:{number}: password in a URL: {line.strip()[:100]}")
            if is_config and not rel.endswith(".md") and not line.lstrip().startswith("#") \
                    and LITERAL_SECRET.search(line):
                found.append(f"{rel}:{number}: literal secret: {line.strip()[:100]}")
            if rel.endswith(".py") and PY_LITERAL_SECRET.search(line):
                found.append(f"{rel}:{number}: literal secret: {line.strip()[:100]}")
    return found


def test_the_detectors_catch_what_they_should():
    assert LITERAL_SECRET.search("      POSTGRES_PASSWORD: hunter2")
    assert LITERAL_SECRET.search("export ETL_API_KEY=abcdef")
    assert not LITERAL_SECRET.search("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}")
    assert not LITERAL_SECRET.search('--password "$${AIRFLOW_ADMIN_PASSWORD}"')
    assert URL_PASSWORD.search("postgresql://airflow:airflow@postgres/airflow")
    assert not URL_PASSWORD.search("postgresql+psycopg2://airflow:${POSTGRES_PASSWORD:?x}@postgres:5432/airflow")
    assert PY_LITERAL_SECRET.search('password = "admin123"')


def test_no_credentials_in_the_repository():
    findings = _findings()
    assert not findings, "credentials belong in the environment or an Airflow connection:\n" + "\n".join(findings)


AIRFLOW_DEFAULT_ADMIN = [
    (re.compile(r"(?i)SIMPLE_AUTH_MANAGER_ALL_ADMINS\s*[:=]\s*['\"]?true"), "every user an admin, no login"),
    (re.compile(r"(?i)_AIRFLOW_WWW_USER_PASSWORD"), "the docker image's default admin password variable"),
    (re.compile(r"(?i)users create\b.*--password\s+['\"]?(?!\$)\w"), "an admin created with a literal password"),
    (re.compile(r"(?i)(ADMIN|WWW_USER)_PASSWORD\w*:-[^}]"), "an admin password with a default value"),
]


@pytest.mark.parametrize("pattern,why", AIRFLOW_DEFAULT_ADMIN, ids=[w for _, w in AIRFLOW_DEFAULT_ADMIN])
def test_airflow_never_starts_with_a_default_admin_password(pattern, why):
    hits = []
    for rel in repo_files():
        if rel.startswith("tests/") or rel.endswith(".md"):
            continue
        text = _text(rel) or ""
        hits += [f"{rel}:{n}: {line.strip()[:100]}" for n, line in enumerate(text.splitlines(), 1)
                 if pattern.search(line)]
    assert not hits, f"{why}:\n" + "\n".join(hits)


def test_local_airflow_is_standalone_with_its_generated_password():
    """`make airflow` runs `airflow standalone`: the simple auth manager generates a random password into
    $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated, which the target prints; nothing sets one."""
    makefile = (REPO / "Makefile").read_text()
    assert "airflow standalone" in makefile
    assert "simple_auth_manager_passwords.json.generated" in makefile
    env = (REPO / "etl" / "airflow_env.sh").read_text()
    assert "PASSWORD" not in env.upper() and "ALL_ADMINS" not in env.upper()
