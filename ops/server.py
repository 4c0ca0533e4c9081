"""Run SpeakerAuth the way production runs it, on this machine, for the smoke, bench and load runs.

Debug off, a real secret key, hashed and compressed static files from ``collectstatic``, gunicorn
with ``gunicorn.conf.py`` bound to a free loopback port, and a throwaway Postgres database that is
created first and dropped last. ``DJANGO_SECURE_SSL_REDIRECT`` stays on, as on Heroku: clients
send ``X-Forwarded-Proto: https`` exactly as the Heroku router does (the settings trust it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The server that holds the throwaway databases (trust auth on CI and on these machines).
ADMIN_URL = os.environ.get(
    "SPEAKERAUTH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
HOST = "127.0.0.1"


def log(message: str) -> None:
    print(message, flush=True)


def database_url(name: str, admin_url: str = ADMIN_URL) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin_execute(query: sql.Composable, admin_url: str) -> None:
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(query)
    finally:
        conn.close()


@contextlib.contextmanager
def temporary_database(name: str, admin_url: str = ADMIN_URL) -> Iterator[str]:
    """Create database ``name`` (dropping a leftover first), yield its URL, always drop it."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    _admin_execute(drop, admin_url)
    _admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)), admin_url)
    try:
        yield database_url(name, admin_url)
    finally:
        # The database server may be mid-restart after a fault test: retry briefly.
        for attempt in range(20):
            try:
                _admin_execute(drop, admin_url)
                break
            except psycopg2.OperationalError:
                if attempt == 19:
                    log(f"WARNING: could not drop database {name}; drop it by hand")
                time.sleep(0.5)


def production_env(db_url: str, **overrides: str) -> dict[str, str]:
    """Environment of a production process (Heroku config vars) for a local run."""
    env = dict(os.environ)
    for key in [k for k in env if k.startswith(("DJANGO_", "VERIFICATION_"))]:
        del env[key]
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS=f"{HOST},localhost",
        DATABASE_URL=db_url,
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``env``; raise with its output when it fails."""
    result = subprocess.run(  # noqa: S603 - fixed interpreter and arguments
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def release(env: dict[str, str], *, collectstatic: bool = True) -> None:
    """What Heroku does before the dynos start: build static files, then the release phase.

    ``SPEAKERAUTH_UBM_FILE`` installs another background model file instead of the shipped one
    (e.g. a freshly trained UBM, to benchmark it).
    """
    if collectstatic:
        manage(env, "collectstatic", "--noinput", "--clear", "--verbosity", "0")
        log("collectstatic: hashed, compressed files in staticfiles/")
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    ubm_file = os.environ.get("SPEAKERAUTH_UBM_FILE")
    installed = manage(env, "install_default_ubm", *(["--path", ubm_file] if ubm_file else []))
    log(f"release: migrate + install_default_ubm: {installed.strip()}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """gunicorn + ``gunicorn.conf.py`` on a loopback port; ``stop()`` always ends it."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        workers: int | None = None,
        threads: int | None = None,
        port: int | None = None,
    ) -> None:
        self.env = dict(env)
        if workers is not None:
            self.env["WEB_CONCURRENCY"] = str(workers)
        if threads is not None:
            self.env["GUNICORN_THREADS"] = str(threads)
        self.port = port or free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="speakerauth-gunicorn-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)

    def start(self, timeout: float = 60.0) -> None:
        command = [
            PYTHON,
            "-m",
            "gunicorn",
            "speakerauth.wsgi",
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"{HOST}:{self.port}",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - fixed interpreter and arguments
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}:\n{self.tail()}"
                )
            if self._answers():
                log(
                    f"gunicorn: pid {self.process.pid}, {self.configured_workers()} workers x "
                    f"{self.configured_threads()} threads (gthread) on {self.base_url}"
                )
                return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s:\n{self.tail()}")

    def configured_workers(self) -> int:
        """The worker count gunicorn.conf.py derives from this environment."""
        default = max(2, os.cpu_count() or 1)
        return int(self.env.get("WEB_CONCURRENCY") or default)

    def configured_threads(self) -> int:
        return int(self.env.get("GUNICORN_THREADS") or 4)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(
                    b"GET /api/v1/feature-contract/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
                )
                return sock.recv(16).startswith(b"HTTP/1.1 ")
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def worker_memory(self) -> dict[int, tuple[int, int]]:
        """{pid: (current RSS, peak RSS)} in bytes for each live worker (Linux /proc)."""
        result = {}
        for pid in self.worker_pids():
            fields = {}
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        fields[key] = int(value.split()[0]) * 1024
            except OSError:
                continue
            if len(fields) == 2:
                result[pid] = (fields["VmRSS"], fields["VmHWM"])
        return result

    def tail(self, n_lines: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n_lines:])

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            log(f"gunicorn: stopped (pid {self.process.pid})")
        self._log.close()

    def __enter__(self) -> Gunicorn:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that ``finally`` blocks stop gunicorn and drop databases."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
