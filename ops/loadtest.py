"""Load and fault test: mixed traffic against the production stack, with Postgres restarted mid-run.

    .venv/bin/python -m ops.loadtest                       # 60 s, Postgres restarted at 25 s
    .venv/bin/python -m ops.loadtest --duration 30 --restart-db-at 10   # the CI version
    .venv/bin/python -m ops.loadtest --restart-db-at 0     # traffic only, no fault

Starts the stack as ``ops.smoke`` does (debug off, gunicorn, throwaway database
``speakerauth_load``), enrolls ``--users`` accounts with real FSDD features, then runs
``--concurrency`` clients for ``--duration`` seconds. Each client picks an operation at random:

* 80 % verify: ``POST challenges/`` then ``POST voiceprint/score/`` with held-out recordings;
* 15 % challenge only (a prompt the user never answers);
* 5 % enroll: ``POST voiceprint/train/`` with one more utterance (stored, model re-adapted).

With ``--restart-db-at T`` the local cluster is restarted at T seconds
(``pg_ctlcluster --skip-systemctl-redirect <version> main restart``; ``--db-down S`` stops it for
S seconds first). Passes when:

1. no response is a 5xx other than 503, and no 503 falls outside the outage (+10 s);
2. no 503 carries a stack trace, and every 503 has Retry-After;
3. the app recovers by itself: no 503 later than 10 s after the database answers again;
4. no acknowledged enrollment is lost: for every user, the utterances stored in the database are
   at least those whose POST was answered 2xx;
5. ``/readyz``, polled every 0.25 s, answers 503 only during the outage and 200 again within
   10 s of the database's return.

It restarts the machine's Postgres, which every other database user on it notices: run it on
purpose. Postgres is always started again (checked with ``pg_isready``), whatever happens.
Exits 1 on any failure and always stops gunicorn.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from bench.http import create_users
from ops.client import FSDD_SPEAKERS, FreshRecordings, Http, Response, fsdd_payloads
from ops.server import (
    Gunicorn,
    exit_on_sigterm,
    log,
    production_env,
    release,
    temporary_database,
)

RECOVERY_LIMIT = 10.0
PROBE_INTERVAL = 0.25  # seconds between readiness probes
OPERATIONS = (("verify", 0.80), ("challenge", 0.15), ("enroll", 0.05))


@dataclass
class Sample:
    start: float
    end: float
    op: str
    endpoint: str
    status: int  # 0: connection error
    retry_after: str | None = None
    body: bytes = b""


@dataclass
class Fault:
    started: float | None = None
    db_back: float | None = None
    error: str | None = None
    command: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Postgres control (local cluster)


def cluster_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    if not versions:
        raise RuntimeError("no local Postgres cluster under /etc/postgresql")
    return versions[-1]


def pg_ctl(action: str) -> None:
    subprocess.run(  # noqa: S603 - fixed command
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster_version(), "main", action],  # noqa: S607
        check=True,
        capture_output=True,
        timeout=60,
    )


def pg_ready() -> bool:
    result = subprocess.run(  # noqa: S603 - fixed command
        ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"],  # noqa: S607
        check=False,
        timeout=10,
    )
    return result.returncode == 0


def wait_pg_ready(timeout: float = 60.0) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pg_ready():
            return time.monotonic()
        time.sleep(0.1)
    return None


def ensure_postgres_up() -> None:
    """Never leave the machine's Postgres down."""
    if pg_ready():
        return
    log("postgres: not answering; starting it again")
    try:
        pg_ctl("start")
    except subprocess.CalledProcessError as exc:
        log(f"postgres: start failed: {exc.stderr.decode(errors='replace').strip()}")
    if wait_pg_ready(60) is None:
        log(
            "postgres: STILL DOWN - start it by hand: pg_ctlcluster "
            f"--skip-systemctl-redirect {cluster_version()} main start"
        )
    else:
        log("postgres: up")


def run_fault(fault: Fault, at: float, down: float, t0: float, stop: threading.Event) -> None:
    if stop.wait(max(0.0, t0 + at - time.monotonic())):
        return
    fault.started = time.monotonic()
    try:
        if down > 0:
            fault.command = ["stop", f"sleep {down:g}", "start"]
            pg_ctl("stop")
            time.sleep(down)
            pg_ctl("start")
        else:
            fault.command = ["restart"]
            pg_ctl("restart")
    except Exception as exc:  # noqa: BLE001 - reported, and Postgres is started again below
        fault.error = f"{type(exc).__name__}: {exc}"
    finally:
        ensure_postgres_up()
        fault.db_back = wait_pg_ready(60)


# --------------------------------------------------------------------------------------------------
# Traffic


@dataclass
class User:
    token: str
    speaker: int
    recordings: FreshRecordings
    next_enroll: int = 0
    acknowledged: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_loop(
    base_url: str,
    users: list[User],
    pools: list[dict],
    rng: random.Random,
    deadline: float,
    samples: list[Sample],
) -> None:
    http = Http(base_url, timeout=30)
    names = [name for name, _ in OPERATIONS]
    weights = [weight for _, weight in OPERATIONS]

    def call(op: str, endpoint: str, user: User, body: object) -> Response | None:
        start = time.monotonic()
        try:
            response = http.request(
                "POST", endpoint, body=body, headers={"Authorization": f"Token {user.token}"}
            )
        except OSError:
            samples.append(Sample(start, time.monotonic(), op, endpoint, 0))
            return None
        samples.append(
            Sample(
                start,
                time.monotonic(),
                op,
                endpoint,
                response.status,
                response.headers.get("retry-after"),
                response.body if response.status >= 500 else b"",
            )
        )
        return response

    while time.monotonic() < deadline:
        op = rng.choices(names, weights)[0]
        user = rng.choice(users)
        pool = pools[user.speaker]
        if op == "enroll":
            with user.lock:  # one user's enrollment is sequential, as from one browser
                digit = user.next_enroll % 10
                recordings = pool["enroll"][digit]
                body = recordings[(user.next_enroll // 10) % len(recordings)]
                user.next_enroll += 1
                response = call(op, "/api/v1/voiceprint/train/", user, body)
                if response is not None and 200 <= response.status < 300:
                    user.acknowledged += 1
            continue
        response = call(op, "/api/v1/challenges/", user, {})
        if op == "challenge" or response is None or response.status != 201:
            continue
        prompt = response.json()
        with user.lock:
            utterances = [user.recordings.take(d) for d in prompt["digits"]]
        body = {"challenge": prompt["id"], "utterances": utterances}
        call(op, "/api/v1/voiceprint/score/", user, body)
    http.close()


def probe_loop(base_url: str, deadline: float, probes: list[Sample]) -> None:
    """``GET /readyz`` every PROBE_INTERVAL s, as an orchestrator polls it: plain HTTP, a new
    connection each time."""
    while time.monotonic() < deadline:
        start = time.monotonic()
        http = Http(base_url, timeout=5, forwarded_https=False)
        try:
            status = http.get("/readyz").status
        except OSError:
            status = 0
        finally:
            http.close()
        probes.append(Sample(start, time.monotonic(), "probe", "/readyz", status))
        time.sleep(max(0.0, PROBE_INTERVAL - (time.monotonic() - start)))


def enroll_users(base_url: str, tokens: list[str], pools: list[dict]) -> list[User]:
    """Give every user a model first: 3 recordings per digit in one request."""
    users = []
    for index, token in enumerate(tokens):
        speaker = index % len(pools)
        user = User(
            token=token, speaker=speaker, recordings=FreshRecordings(pools[speaker]["held_out"])
        )
        batch = [pools[user.speaker]["enroll"][d][i] for i in range(3) for d in range(10)]
        response = Http(base_url, token=token).post(
            "/api/v1/voiceprint/train/", {"utterances": batch}
        )
        if response.status // 100 != 2:
            raise RuntimeError(f"initial enrollment -> {response.status}: {response.text()[:300]}")
        user.acknowledged = len(batch)
        user.next_enroll = 30
        users.append(user)
    return users


def stored_utterances(db_url: str) -> dict[str, int]:
    """{token: enrollment utterances stored}, read straight from the database."""
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT t.key, count(u.id) FROM authtoken_token t "
                "LEFT JOIN verification_enrollmentutterance u "
                "ON u.user_id = t.user_id AND u.purpose = 'enroll' GROUP BY t.key"
            )
            return {key: int(n) for key, n in cur.fetchall()}
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------
# Verdict


def timeline(samples: list[Sample], t0: float, duration: float, step: float = 5.0) -> list[str]:
    lines = []
    for begin in range(0, int(duration + step), int(step)):
        window = [s for s in samples if begin <= s.end - t0 < begin + step]
        if not window:
            continue
        statuses = Counter(
            s.status // 100 * 100 if s.status not in (0, 503) else s.status for s in window
        )
        parts = ", ".join(
            f"{'conn-err' if k == 0 else (str(k) if k == 503 else f'{k // 100}xx')} {n}"
            for k, n in sorted(statuses.items())
        )
        lines.append(
            f"  {begin:3d}-{begin + int(step):<3d}s  {len(window) / step:6.1f} req/s  {parts}"
        )
    return lines


def judge(
    samples: list[Sample],
    users: list[User],
    stored: dict[str, int],
    fault: Fault | None,
    t0: float,
) -> list[tuple[bool, str]]:
    checks: list[tuple[bool, str]] = []
    server_errors = [s for s in samples if s.status >= 500 and s.status != 503]
    conn_errors = [s for s in samples if s.status == 0]
    unavailable = [s for s in samples if s.status == 503]
    checks.append(
        (
            not server_errors,
            f"no 5xx other than 503 ({len(server_errors)} seen"
            + (f": {Counter(s.status for s in server_errors)})" if server_errors else ")"),
        )
    )
    checks.append((not conn_errors, f"no connection errors ({len(conn_errors)} seen)"))
    traces = [s for s in unavailable if b"Traceback" in s.body or b'File "' in s.body]
    checks.append((not traces, f"no stack trace in any 503 body ({len(traces)} with one)"))
    no_retry = [s for s in unavailable if not s.retry_after]
    checks.append((not no_retry, f"every 503 has Retry-After ({len(no_retry)} without)"))
    if fault is None:
        checks.append((not unavailable, f"no 503 without a fault ({len(unavailable)} seen)"))
    else:
        checks.append(
            (
                fault.error is None,
                f"postgres {' / '.join(fault.command)} at "
                f"{fault.started - t0:.1f} s" + (f" FAILED: {fault.error}" if fault.error else ""),
            )
        )
        back = fault.db_back
        checks.append(
            (
                back is not None,
                "postgres answered again" + (f" at {back - t0:.1f} s" if back else ""),
            )
        )
        if back is not None:
            outside = [
                s
                for s in unavailable
                if s.start < fault.started - 0.5 or s.end > back + RECOVERY_LIMIT
            ]
            checks.append((not outside, f"no 503 outside the outage ({len(outside)} outside)"))
            last_503 = max((s.end for s in unavailable), default=None)
            recovery = max(0.0, last_503 - back) if last_503 is not None else 0.0
            ok_after = [s for s in samples if s.start > back and 200 <= s.status < 300]
            first_ok = min((s.end for s in ok_after), default=None)
            checks.append(
                (
                    recovery <= RECOVERY_LIMIT and first_ok is not None,
                    f"recovered without restarting the app: last 503 {recovery:.1f} s after the "
                    f"database returned, first 2xx after it at +{(first_ok or back) - back:.1f} s "
                    f"(limit {RECOVERY_LIMIT:.0f} s); {len(unavailable)} requests answered 503",
                )
            )
    lost = {
        u.token[:6]: (u.acknowledged, stored.get(u.token, 0))
        for u in users
        if stored.get(u.token, 0) < u.acknowledged
    }
    acked = sum(u.acknowledged for u in users)
    checks.append(
        (
            not lost,
            f"no acknowledged enrollment lost: {acked} acknowledged, "
            f"{sum(stored.get(u.token, 0) for u in users)} stored"
            + (f"; short: {lost}" if lost else ""),
        )
    )
    return checks


def judge_readiness(probes: list[Sample], fault: Fault | None, t0: float) -> list[tuple[bool, str]]:
    """/readyz answers 200 or 503 only; 503 only while the database is away; 200 again within
    RECOVERY_LIMIT of its return, and at the end."""
    other = Counter(p.status for p in probes if p.status not in (200, 503))
    checks = [(not other, f"readyz: {len(probes)} probes, only 200 or 503 ({dict(other)} else)")]
    down = [p for p in probes if p.status == 503]
    if fault is None or fault.started is None or fault.db_back is None:
        return [*checks, (not down, f"readyz: no 503 without a fault ({len(down)} seen)")]
    back = fault.db_back
    outside = [p for p in down if p.start < fault.started - 0.5 or p.end > back + RECOVERY_LIMIT]
    ready_again = min((p.end for p in probes if p.start > back and p.status == 200), default=None)
    final = probes[-1].status if probes else None
    again = f"+{ready_again - back:.1f} s" if ready_again is not None else "never"
    return [
        *checks,
        (
            not outside,
            f"readyz: 503 only during the outage ({len(down)} polls, {len(outside)} outside)",
        ),
        (
            ready_again is not None and ready_again - back <= RECOVERY_LIMIT and final == 200,
            f"readyz: 200 again {again} after the database returned, and at the end ({final})",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument(
        "--restart-db-at",
        type=float,
        default=25.0,
        help="seconds into the traffic to restart Postgres; 0 = no fault",
    )
    parser.add_argument(
        "--db-down",
        type=float,
        default=0.0,
        help="keep Postgres stopped this long instead of a plain restart",
    )
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--database", default="speakerauth_load")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    failed = False
    log(
        f"loadtest: {args.duration:.0f} s, {args.concurrency} clients, {args.users} users, "
        + (f"Postgres restart at {args.restart_db_at:.0f} s" if args.restart_db_at else "no fault")
    )
    try:
        pools = [
            {
                "enroll": fsdd_payloads(name, range(0, 20)),
                # Never enrolled; each user's are used in turn (no replays).
                "held_out": fsdd_payloads(name, range(20, 50)),
            }
            for name in FSDD_SPEAKERS
        ]
        with temporary_database(args.database) as db_url:
            env = production_env(
                db_url,
                # A dozen users at full speed: no lockout, and no per-user throttle (429).
                VERIFICATION_LOCKOUT_FAILURES="0",
                VERIFICATION_THROTTLE_RATE="1000000/min",
            )
            release(env, collectstatic=False)
            with Gunicorn(env) as server:
                users = enroll_users(
                    server.base_url, create_users(env, args.users, server.base_url), pools
                )
                log(f"enrolled {len(users)} users (30 utterances each); traffic starts")
                samples: list[Sample] = []
                stop = threading.Event()
                t0 = time.monotonic()
                deadline = t0 + args.duration
                fault = Fault() if args.restart_db_at > 0 else None
                threads = [
                    threading.Thread(
                        target=client_loop,
                        args=(
                            server.base_url,
                            users,
                            pools,
                            # Reproducible traffic mix, not a secret.
                            random.Random(args.seed + i),  # noqa: S311
                            deadline,
                            samples,
                        ),
                    )
                    for i in range(args.concurrency)
                ]
                probes: list[Sample] = []
                threads.append(
                    threading.Thread(target=probe_loop, args=(server.base_url, deadline, probes))
                )
                if fault is not None:
                    threads.append(
                        threading.Thread(
                            target=run_fault,
                            args=(fault, args.restart_db_at, args.db_down, t0, stop),
                        )
                    )
                for thread in threads:
                    thread.start()
                try:
                    for thread in threads:
                        thread.join()
                finally:
                    stop.set()
                    ensure_postgres_up()
                for line in timeline(samples, t0, args.duration):
                    log(line)
                ops = Counter(s.endpoint.split("/")[-2] for s in samples)
                log(
                    f"requests: {len(samples)} ({dict(ops)}), "
                    f"{len(samples) / args.duration:.0f} req/s"
                )
                stored = stored_utterances(db_url)
                gunicorn_log = server.log_text()
                checks = judge(samples, users, stored, fault, t0)
                checks += judge_readiness(probes, fault, t0)
                checks.append(("Traceback" not in gunicorn_log, "no traceback in the gunicorn log"))
                for ok, text in checks:
                    log(f"  {'ok  ' if ok else 'FAIL'}  {text}")
                failed = not all(ok for ok, _ in checks)
                if "Traceback" in gunicorn_log:
                    log(gunicorn_log[gunicorn_log.index("Traceback") :][:3000])
    except Exception:
        failed = True
        log("  FAIL  unexpected error:\n" + traceback.format_exc())
    finally:
        ensure_postgres_up()
    log(f"loadtest: {'FAILED' if failed else 'PASSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
