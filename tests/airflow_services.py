"""A real Airflow for tests: temporary homes, free ports, long-running services in their own process groups.

Used by the tests that need Airflow's own scheduler rather than `airflow dags test`: tests/production (PostgreSQL +
CeleryExecutor) and tests/e2e/test_airflow_backfill.py (SQLite + LocalExecutor, what `make airflow` runs).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with closing(socket.create_connection(("127.0.0.1", port), timeout=1)):
            return True
    except OSError:
        return False


def airflow_env(home: Path, data: Path, executor: str, sql_alchemy_conn: str, **extra: str) -> dict:
    """The environment of every Airflow process of a test: its own home, data dir, ports and secrets, the
    project's DAGs, no examples, and no cron runs (only the runs the test creates; a cron run for "now" would
    ask live yfinance). `extra` adds or overrides variables."""
    api_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "ETL_DATA_DIR": str(data),
        "ETL_WAREHOUSE": str(data / "warehouse.duckdb"),
        "GX_ANALYTICS_ENABLED": "false",
        **extra,
    }
    env.pop("ETL_UNIVERSE", None)
    return env


class Processes:
    """Long-running processes of a test, each in its own session (= process group), with a log file."""

    def __init__(self, log_dir: Path, env: dict, may_exit: tuple[str, ...] = ()):
        self.log_dir, self.env, self.may_exit = log_dir, env, may_exit
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, env=env or self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def start_airflow(self, api_port: int) -> None:
        """Airflow's api-server (one worker, on api_port), scheduler and dag-processor: what every test's
        Airflow runs (an executor's workers, if any, come on top)."""
        self.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                  "--workers", "1"])
        self.start("scheduler", [AIRFLOW, "scheduler"])
        self.start("dag-processor", [AIRFLOW, "dag-processor"])

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None and n not in self.may_exit}
        if dead:
            raise AssertionError(f"process(es) exited early: {dead}\n{self.tails()}")

    def tails(self, lines: int = 30) -> str:
        out = []
        for name in self.procs:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {name}.log (last {lines} lines)\n" + "\n".join(text))
        return "\n".join(out)

    def stop_all(self) -> None:
        """SIGTERM every group, then SIGKILL what is left, including descendants that made groups of their own
        (Airflow's task supervisor puts each task process in a new group)."""
        import psutil

        family: list[psutil.Process] = []
        for proc in self.procs.values():
            try:
                parent = psutil.Process(proc.pid)
                family += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        groups = set()
        for member in family:
            try:
                groups.add(os.getpgid(member.pid))
            except ProcessLookupError:
                pass
        mine = os.getpgid(0)
        groups.discard(mine)
        for group in groups:
            try:
                os.killpg(group, signal.SIGTERM)
            except ProcessLookupError:
                pass
        _, alive = psutil.wait_procs(family, timeout=20)
        for member in alive:
            try:
                os.killpg(os.getpgid(member.pid), signal.SIGKILL) if os.getpgid(member.pid) != mine \
                    else member.kill()
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        psutil.wait_procs(alive, timeout=10)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]


def airflow(env: dict, *args: str, timeout: int = 300) -> str:
    """`airflow <args>`; fails the test with Airflow's output when it exits non-zero."""
    proc = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        raise AssertionError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                             f"\n{proc.stderr[-5000:]}")
    return proc.stdout


def wait(what: str, predicate, timeout: float, procs: Processes, every: float = 1.0):
    """Poll `predicate` until it returns something truthy (returned); fail with the service logs on timeout or
    when a service died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        procs.check_alive()
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{procs.tails()}")


def task_logs(home: Path, dag_id: str, lines: int = 40) -> str:
    out = []
    for path in sorted((home / "logs").glob(f"dag_id={dag_id}/**/*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {path.relative_to(home)}\n" + "\n".join(text))
    return "\n".join(out)
