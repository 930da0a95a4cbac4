"""Browser check of the Airflow UI (`make ui-check`): the project's Airflow, a real login, a real run, a screenshot.

1. `airflow standalone` with the environment of etl/airflow_env.sh, but in a temporary AIRFLOW_HOME and
   ETL_DATA_DIR (the user's airflow_home/ and data/ are never touched), on free loopback ports.
2. Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) logs in through the login page with the
   password the simple auth manager generated.
3. Through the REST API v2 (JWT from POST /auth/token): unpause `market_daily_xhkg`, trigger it on the sample
   source for 2025-09-01..2025-09-05, wait for the run to succeed.
4. Screenshot of the DAG's grid view (/dags/market_daily_xhkg) to data/ui-check/grid.png (printed).

Exit 0 only when all of that worked; otherwise exit 1 with the reason and the tail of the Airflow log. The whole
standalone process tree is stopped at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "market_daily_xhkg"
CONF = {"source": "sample", "start": "2025-09-01", "end": "2025-09-05"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER = "admin"


class CheckFailed(Exception):
    pass


def log(msg: str) -> None:
    print(f"[ui-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_env(home: Path, data: Path, port: int) -> dict[str, str]:
    """The environment etl/airflow_env.sh gives, sourced for real, with the temporary home and data dir."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ETL_"))}
    base.update(AIRFLOW_HOME=str(home), ETL_DATA_DIR=str(data), AIRFLOW__API__PORT=str(port))
    out = subprocess.run(["bash", "-c", f"source {REPO / 'etl' / 'airflow_env.sh'} && env -0"], env=base,
                         check=True, capture_output=True, text=True).stdout
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    url = f"http://127.0.0.1:{port}"
    env.update({
        # the API server answers on loopback only; the task runners find it there, not on the default :8080
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        # the log servers of the executor and triggerer must not collide with a `make airflow` running alongside
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        # one DAG run of 7 sequential tasks: 4 executor processes instead of 32 forked up front on 2 cores
        "AIRFLOW__CORE__PARALLELISM": "4",
        # no scheduled (live yfinance) run when the DAG is unpaused: only the run this check triggers
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "ETL_WAREHOUSE": str(data / "warehouse.duckdb"),
    })
    return env


class Api:
    def __init__(self, base: str):
        self.base = base
        self.token: str | None = None

    def call(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> tuple[int, object]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, raw.decode(errors="replace")
        except (urllib.error.URLError, OSError) as err:  # not listening (yet), reset, timed out
            return 0, str(err)


class Standalone:
    """`airflow standalone` in its own session (process group); stop() ends every process of it."""

    def __init__(self, env: dict[str, str], logfile: Path):
        self.env, self.logfile = env, logfile
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        airflow = shutil.which("airflow", path=self.env["PATH"])
        if not airflow:
            raise CheckFailed("no `airflow` executable in the venv: run `make venv`")
        self.out = open(self.logfile, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([airflow, "standalone"], env=self.env, cwd=REPO, stdout=self.out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _stragglers(self) -> list[int]:
        """Processes started with our (unique, temporary) AIRFLOW_HOME that left the process group."""
        marker = f"AIRFLOW_HOME={self.env['AIRFLOW_HOME']}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "environ").read_bytes().split(b"\0"):
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def stop(self) -> None:
        if self.proc is None:
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            for pid in self._stragglers():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (self.alive() or self._stragglers()):
                time.sleep(0.5)
            if not self.alive() and not self._stragglers():
                break
        self.proc.wait(timeout=5)
        self.out.close()
        left = self._stragglers()
        log("Airflow stopped" + (f"; still running: {left}" if left else " (no process left)"))

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for(what: str, deadline: float, probe, airflow: Standalone, every: float = 1.0):
    """Call probe() until it returns something truthy; fail at the deadline or when Airflow died."""
    while True:
        result = probe()
        if result:
            return result
        if not airflow.alive():
            raise CheckFailed(f"airflow standalone exited (rc={airflow.proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out waiting for {what}")
        time.sleep(every)


def check(out_png: Path, timeout: float, workdir: Path, conf: dict) -> None:
    from playwright.sync_api import sync_playwright

    deadline = time.monotonic() + timeout
    out_png.unlink(missing_ok=True)  # a screenshot left by an earlier pass must not pass for this one
    home, data = workdir / "airflow_home", workdir / "data"
    home.mkdir(parents=True)
    port = free_port()
    env = project_env(home, data, port)
    base = f"http://127.0.0.1:{port}"
    api = Api(base)
    airflow = Standalone(env, workdir / "standalone.log")

    log(f"starting `airflow standalone` in {home} on {base} (it migrates the new SQLite database itself)")
    airflow.start()
    try:
        wait_for("the API server", deadline,
                 lambda: _ok(api.call("GET", "/api/v2/monitor/health", auth=False)), airflow)
        pwfile = home / "simple_auth_manager_passwords.json.generated"
        password = wait_for(f"{pwfile.name}", deadline,
                            lambda: pwfile.exists() and json.loads(pwfile.read_text() or "{}").get(USER), airflow)
        log(f"API server up; login {USER} / (password from {pwfile.name})")

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.set_default_timeout(30_000)
                ui_login(page, base, password)

                status, body = api.call("POST", "/auth/token", {"username": USER, "password": password}, auth=False)
                if status != 201 or not isinstance(body, dict) or "access_token" not in body:
                    raise CheckFailed(f"POST /auth/token: HTTP {status}: {body}")
                api.token = body["access_token"]

                # the writer pool the publish task runs in (`make airflow-init` creates the same)
                status, body = api.call("POST", "/api/v2/pools", {"name": "warehouse_writer", "slots": 1,
                                                                  "description": "one task at a time publishes"})
                if status not in (201, 409):
                    raise CheckFailed(f"creating pool warehouse_writer: HTTP {status}: {body}")
                wait_for(f"DAG {DAG_ID} to be parsed", deadline, lambda: _dag_present(api, airflow), airflow, 2)
                status, body = api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
                if status != 200 or body.get("is_paused") is not False:
                    raise CheckFailed(f"unpausing {DAG_ID}: HTTP {status}: {body}")
                status, run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                                       {"logical_date": None, "conf": conf})
                if status != 200:
                    raise CheckFailed(f"triggering {DAG_ID}: HTTP {status}: {run}")
                run_id = run["dag_run_id"]
                log(f"triggered {DAG_ID} run {run_id} with conf {json.dumps(conf)}")
                try:
                    state = wait_for(f"run {run_id} to finish", deadline, lambda: _finished(api, run_id), airflow, 2)
                except CheckFailed as err:  # still queued (paused?) or running at the deadline: say where it stood
                    _, now = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
                    raise CheckFailed(f"{err}; run state {(now or {}).get('state')!r}, "
                                      f"tasks {_task_states(api, run_id)}") from None
                tasks = _task_states(api, run_id)
                log(f"run {run_id}: {state}; tasks: {tasks}")
                if state != "success":
                    raise CheckFailed(f"run {run_id} ended {state}; tasks: {tasks}")

                grid_screenshot(page, base, run_id, out_png)
            finally:
                browser.close()
    except BaseException:
        log("tail of the Airflow log:\n" + airflow.tail())
        raise
    finally:
        airflow.stop()


def _ok(result: tuple[int, object]) -> bool:
    return result[0] == 200


def _dag_present(api: Api, airflow: Standalone) -> bool:
    status, body = api.call("GET", f"/api/v2/dags/{DAG_ID}")
    if status == 200:
        return True
    _, errors = api.call("GET", "/api/v2/importErrors")
    if isinstance(errors, dict) and errors.get("import_errors"):
        raise CheckFailed(f"DAG {DAG_ID} missing; import errors: {errors['import_errors']}")
    return False


def _finished(api: Api, run_id: str) -> str | None:
    status, body = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    if status != 200:
        raise CheckFailed(f"GET dagRun {run_id}: HTTP {status}: {body}")
    if body["state"] in ("success", "failed"):
        return body["state"]
    # the sample source never needs a retry: a failed try fails the check now, not after the retry delay
    tasks = _task_states(api, run_id)
    if any(state in ("failed", "up_for_retry", "upstream_failed") for state in tasks.values()):
        raise CheckFailed(f"run {run_id} ({body['state']}) has a failed task: {tasks}")
    return None


def _task_states(api: Api, run_id: str) -> dict[str, str | None]:
    _, body = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    return {ti["task_id"]: ti["state"] for ti in (body or {}).get("task_instances", [])}


def ui_login(page, base: str, password: str) -> None:
    """The simple auth manager's login form, as a person fills it in."""
    page.goto(f"{base}/", wait_until="domcontentloaded")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name='username']").fill(USER)
    page.locator("input[name='password']").fill(password)
    page.locator("button[type='submit']").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.wait_for_load_state("networkidle")
    log(f"logged in through the UI as {USER} (now on {page.url})")


def grid_screenshot(page, base: str, run_id: str, out_png: Path) -> None:
    page.goto(f"{base}/dags/{DAG_ID}", wait_until="domcontentloaded")
    if "/auth/login" in page.url:
        raise CheckFailed(f"the UI sent the logged-in browser back to the login page: {page.url}")
    page.wait_for_load_state("networkidle")
    # the grid shows the task names once the run's structure is loaded
    for task_id in ("plan", "extract", "land", "transform", "validate", "publish", "export", "report"):
        page.get_by_text(task_id, exact=True).first.wait_for(state="visible")
    page.wait_for_timeout(1500)  # let the grid's cells and colours settle after the last request
    out_png.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out_png), full_page=True)
    log(f"grid screenshot: {out_png}")


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "data" / "ui-check" / "grid.png")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("UI_CHECK_TIMEOUT", 300)),
                        help="seconds for the whole check (env UI_CHECK_TIMEOUT; default %(default)s)")
    parser.add_argument("--conf", type=json.loads, default=CONF, help="DAG run conf (JSON); default: %(default)s")
    parser.add_argument("--keep", action="store_true", help="keep the temporary Airflow home (for debugging)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"ui-check: {CHROMIUM} missing (apt-get install -y chromium; `make ui-check` does it)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="ui-check-"))
    # SIGTERM (CI time-out, kill) goes through the finally blocks like Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupted)
    started = time.monotonic()
    try:
        check(args.out.resolve(), args.timeout, workdir, args.conf)
    except CheckFailed as err:
        print(f"ui-check FAILED after {time.monotonic() - started:.0f}s: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"ui-check passed in {time.monotonic() - started:.0f}s: screenshot {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
