"""HTTP benchmark: the production stack (gunicorn + Postgres) on this machine, with real features.

    .venv/bin/python -m bench.http [--quick] [--engine-report FILE] [--write docs/benchmarks.md]

Runs parts (b)-(e) of ``make bench`` (part (a), the in-process engine timings, is
``bench/engine.py``; ``--engine-report`` embeds its output in the written report):

(b) verification latency p50/p95/p99 at concurrency 1 and requests/s at concurrency 1, 8 and 32
    (``POST /api/v1/voiceprint/score/``, 5-digit challenges, held-out FSDD recordings of the
    enrolled speaker); enrollment requests/s at concurrency 8 (``POST /api/v1/voiceprint/train/``,
    one utterance per request, as the browser sends them);
(c) bytes on the wire per second of speech for an utterance payload (JSON arrays, float32 and
    float16 base64);
(d) peak RSS (and PSS) per gunicorn worker;
(e) the stack's own floor on this machine, for scale: the same server answering ``GET /healthz``
    (no database, no Django view) and a token-authenticated ``GET /api/v1/me/`` (DRF, one read)
    at concurrency 8, and the latter's latency at concurrency 1. A verification does all that and
    its own work besides, so these bound from above what any verification path can reach here.

The server runs as in production (``ops.server``: debug off, ``gunicorn.conf.py``, a throwaway
database ``speakerauth_bench``) with four evaluation settings: lockout off
(``VERIFICATION_LOCKOUT_FAILURES=0``, many attempts per user), no per-user throttle
(``VERIFICATION_THROTTLE_RATE``), a long challenge lifetime (the challenges are all created
before the timed runs, so only the score request is measured) and no request logging. The load
generator is this process: one thread and one connection per concurrent client (reopened when
gunicorn closes it after a response), bodies serialised in advance, loopback only, bounded in
count and time. Each client speaks for its own users (32 users, user i on client i mod c), as
people verify one attempt at a time, and every user first makes ``STEADY_STATE_ATTEMPTS``
attempts, so the replay check compares each utterance with a full memory of that user's recent
ones.
Client and server share the machine's cores, which the figures include.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ops.client import (
    FSDD_SPEAKERS,
    FreshRecordings,
    Http,
    Response,
    as_payloads,
    fsdd_payloads,
    fsdd_utterances,
    give_consent,
    seconds_of_speech,
)
from ops.server import (
    ROOT,
    Gunicorn,
    exit_on_sigterm,
    log,
    manage,
    production_env,
    release,
    temporary_database,
)
from verification.features import Utterance, utterance_payload

TARGETS = {
    "p50": 15.0,  # ms, concurrency 1
    "p99": 50.0,  # ms, concurrency 1
    "verify_c8": 250.0,  # requests/s
    "enroll_c8": 150.0,  # requests/s
    "wire": 12_000.0,  # bytes per second of speech, compact encoding
    "rss": 200 * 1024 * 1024,  # bytes per worker
}
ENROLL_INDICES = range(0, 5)  # 5 recordings per digit: 30 make the first model, 20 re-adapt
# Never enrolled; 45 per digit, used in turn so the replay check sees no repeats.
HELD_OUT_INDICES = range(5, 50)
WIRE_SAMPLE_PER_DIGIT = 10


@dataclass
class Scale:
    users: int
    verify_c1: int
    verify_c8: int
    verify_c32: int
    json_c1: int
    floor: int
    max_seconds: float


# As many users as the highest concurrency: each client speaks for its own users (one person, one
# browser, one attempt at a time), so no two requests in flight verify the same user.
FULL = Scale(
    users=32,
    verify_c1=400,
    verify_c8=2000,
    verify_c32=2000,
    json_c1=150,
    floor=3000,
    max_seconds=60,
)
QUICK = Scale(
    users=32, verify_c1=100, verify_c8=400, verify_c32=400, json_c1=40, floor=800, max_seconds=20
)
# Attempts per user before the timed runs: a user in steady state has the replay check's full
# memory of recent attempts (services.REPLAY_RECENT_FINGERPRINTS = 100 fingerprints, 5 per attempt).
STEADY_STATE_ATTEMPTS = 20


@dataclass
class Run:
    """One timed run: per-request latencies (s), status counts and wall time (s)."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: int = 0
    wall: float = 0.0
    truncated: bool = False

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rps(self) -> float:
        return self.count / self.wall if self.wall else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies) * 1000, q)) if self.latencies else 0.0

    def summary(self) -> str:
        bad = {s: n for s, n in sorted(self.statuses.items()) if not 200 <= s < 300}
        text = (
            f"c={self.concurrency:<2} n={self.count:<5} p50 {self.percentile(50):6.1f} ms  "
            f"p95 {self.percentile(95):6.1f} ms  p99 {self.percentile(99):6.1f} ms  "
            f"{self.rps:7.1f} req/s"
        )
        if bad or self.errors:
            text += f"  non-2xx {bad} errors {self.errors}"
        if self.truncated:
            text += "  (stopped at the time limit)"
        return text


def run_load(
    base_url: str,
    per_client: Sequence[Sequence[Any]],
    send: Callable[[Http, Any], Response],
    *,
    max_seconds: float,
) -> Run:
    """Each client thread sends its items in order on its own connection."""
    run = Run(concurrency=len(per_client))
    lock = threading.Lock()
    start = threading.Barrier(len(per_client) + 1)
    deadline = [0.0]

    def client(items: Sequence[Any]) -> None:
        http = Http(base_url, timeout=30)
        latencies, statuses, errors, truncated = [], Counter(), 0, False
        start.wait()
        for item in items:
            if time.perf_counter() > deadline[0]:
                truncated = True
                break
            try:
                response = send(http, item)
            except OSError:
                errors += 1
                continue
            latencies.append(response.elapsed)
            statuses[response.status] += 1
        http.close()
        with lock:
            run.latencies.extend(latencies)
            run.statuses.update(statuses)
            run.errors += errors
            run.truncated |= truncated

    threads = [threading.Thread(target=client, args=(items,)) for items in per_client]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + max_seconds
    start.wait()
    for thread in threads:
        thread.join()
    run.wall = time.perf_counter() - began
    return run


def deal(items: Sequence[Any], n: int) -> list[list[Any]]:
    """Round-robin ``items`` over ``n`` clients."""
    return [list(items[i::n]) for i in range(n)]


def deal_by_user(items: Sequence[tuple[str, bytes]], tokens: list[str], n: int) -> list[list[Any]]:
    """``(token, body)`` items over ``n`` clients, each user's on one client in order (user i on
    client i mod n): as many users as clients means no two requests in flight share a user."""
    client_of = {token: i % n for i, token in enumerate(tokens)}
    per_client: list[list[Any]] = [[] for _ in range(n)]
    for item in items:
        per_client[client_of[item[0]]].append(item)
    return per_client


# --------------------------------------------------------------------------------------------------
# Setup


def create_users(env: dict[str, str], n: int, base_url: str) -> list[str]:
    """API tokens of ``n`` fresh users who gave voice consent through the API (the users are
    created directly: password hashing is not measured here)."""
    code = (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        "User = get_user_model()\n"
        "tokens = []\n"
        f"for i in range({n}):\n"
        "    user = User.objects.create_user(f'bench{i:03d}', f'bench{i:03d}@example.com', None)\n"
        "    tokens.append(Token.objects.create(user=user).key)\n"
        "print(json.dumps(tokens))\n"
    )
    out = manage(env, "shell", "--no-imports", "--command", code)
    tokens = json.loads(out.strip().splitlines()[-1])
    for token in tokens:
        http = Http(base_url, token=token)
        give_consent(http)
        http.close()
    return tokens


@dataclass
class Speaker:
    name: str
    enroll: dict[int, list[dict[str, Any]]]
    held_out: dict[int, list[dict[str, Any]]]
    held_out_json: dict[int, list[dict[str, Any]]]
    held_out_utts: dict[int, list[Utterance]]


def load_speakers(encoding: str) -> list[Speaker]:
    speakers = []
    for name in FSDD_SPEAKERS:
        held_out = fsdd_utterances(name, HELD_OUT_INDICES)
        speakers.append(
            Speaker(
                name=name,
                enroll=fsdd_payloads(name, ENROLL_INDICES, encoding=encoding),
                held_out=as_payloads(held_out, encoding=encoding),
                held_out_json=as_payloads(held_out, encoding=None),
                held_out_utts=held_out,
            )
        )
    return speakers


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _get(path: str) -> Callable[[Http, str | None], Response]:
    def send(http: Http, token: str | None) -> Response:
        headers = {"Authorization": f"Token {token}"} if token else {}
        return http.request("GET", path, headers=headers)

    return send


def _post(path: str) -> Callable[[Http, tuple[str, bytes]], Response]:
    def send(http: Http, item: tuple[str, bytes]) -> Response:
        token, body = item
        return http.request("POST", path, body=body, headers={"Authorization": f"Token {token}"})

    return send


# --------------------------------------------------------------------------------------------------
# Phases


def bench_enrollment(
    base_url: str, tokens: list[str], speakers: list[Speaker], scale: Scale
) -> tuple[Run, Run]:
    """(first model: 3 per digit, the 30th adapts; then each further utterance re-adapts)."""
    first, more = [], []
    for user_index, token in enumerate(tokens):
        speaker = speakers[user_index % len(speakers)]
        n_per_digit = len(speaker.enroll[0])
        for index in range(n_per_digit):
            phase = first if index < 3 else more
            for digit in range(10):
                phase.append((user_index, (token, _encode(speaker.enroll[digit][index]))))
    send = _post("/api/v1/voiceprint/train/")
    runs = []
    for phase in (first, more):
        # One user's utterances stay on one client, in order, as one browser would send them.
        per_client: list[list[tuple[str, bytes]]] = [[] for _ in range(8)]
        for user_index, item in phase:
            per_client[user_index % 8].append(item)
        runs.append(run_load(base_url, per_client, send, max_seconds=scale.max_seconds * 2))
    return runs[0], runs[1]


def bench_floor(base_url: str, tokens: list[str], scale: Scale) -> dict[str, Run]:
    """(e): what the stack costs before any verification work, on this machine and load
    generator: requests that do a small part of what a verification does."""
    users = [tokens[i % len(tokens)] for i in range(scale.floor)]
    me = _get("/api/v1/me/")
    runs = {
        "healthz_c8": (deal([None] * scale.floor, 8), _get("/healthz")),
        "me_c1": ([users[: scale.floor // 4]], me),
        "me_c8": (deal(users, 8), me),
    }
    return {
        name: run_load(base_url, per_client, send, max_seconds=scale.max_seconds)
        for name, (per_client, send) in runs.items()
    }


def create_challenges(base_url: str, tokens: list[str], per_user: int) -> list[tuple[str, dict]]:
    """[(token, challenge)], interleaved over users; created before any timed run."""
    created: list[tuple[str, dict]] = []
    lock = threading.Lock()

    def client(my_tokens: list[str]) -> None:
        http = Http(base_url, timeout=30)
        mine = []
        for _ in range(per_user):
            for token in my_tokens:
                response = http.request(
                    "POST",
                    "/api/v1/challenges/",
                    body={},
                    headers={"Authorization": f"Token {token}"},
                )
                if response.status != 201:
                    raise RuntimeError(f"challenge -> {response.status}: {response.text()[:300]}")
                mine.append((token, response.json()))
        http.close()
        with lock:
            created.extend(mine)

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in deal(tokens, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Interleave users so that consecutive requests rarely belong to one user.
    created.sort(key=lambda item: item[1]["id"])
    return created


def score_bodies(
    challenges: list[tuple[str, dict]], tokens: list[str], speakers: list[Speaker]
) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(compact bodies, JSON-array bodies) answering ``challenges`` in order: two encodings of the
    same answer, of which one is sent. Each user's recordings of a digit are used in turn
    (``FreshRecordings``), so no answer repeats a recording that user sent recently."""
    speaker_of = {token: speakers[i % len(speakers)] for i, token in enumerate(tokens)}
    turns = {token: FreshRecordings(speaker.held_out) for token, speaker in speaker_of.items()}
    bodies, json_bodies = [], []
    for token, challenge in challenges:
        speaker, turn = speaker_of[token], turns[token]
        picks = []
        for digit in challenge["digits"]:
            index = turn.next[digit] % len(speaker.held_out[digit])
            turn.take(digit)
            picks.append((digit, index))
        for out, pool in ((bodies, speaker.held_out), (json_bodies, speaker.held_out_json)):
            utterances = [pool[digit][index] for digit, index in picks]
            out.append((token, _encode({"challenge": challenge["id"], "utterances": utterances})))
    return bodies, json_bodies


def wire_sizes(speakers: list[Speaker]) -> dict[str, dict[str, float]]:
    """Bytes per second of speech of single-utterance bodies (what the recorder POSTs)."""
    sizes: dict[str, list[float]] = {"json": [], "float32": [], "float16": []}
    bodies: dict[str, list[int]] = {"json": [], "float32": [], "float16": []}
    for speaker in speakers:
        for digit in range(10):
            for utt in speaker.held_out_utts[digit][:WIRE_SAMPLE_PER_DIGIT]:
                seconds = seconds_of_speech(utterance_payload(utt))
                for encoding in sizes:
                    body = utterance_payload(utt, encoding=None if encoding == "json" else encoding)
                    n_bytes = len(_encode(body))
                    sizes[encoding].append(n_bytes / seconds)
                    bodies[encoding].append(n_bytes)
    return {
        name: {
            "per_second": statistics.fmean(values),
            "per_second_max": max(values),
            "body_mean": statistics.fmean(bodies[name]),
        }
        for name, values in sizes.items()
    }


class MemorySampler:
    """Peak RSS/PSS of each gunicorn worker, sampled while the benchmark runs."""

    def __init__(self, server: Gunicorn, interval: float = 0.5) -> None:
        self.server = server
        self.interval = interval
        self.peak_rss: dict[int, int] = {}
        self.peak_pss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _pss(self, pid: int) -> int | None:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def sample(self) -> None:
        for pid, (_rss, hwm) in self.server.worker_memory().items():
            self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), hwm)
            pss = self._pss(pid)
            if pss is not None:
                self.peak_pss[pid] = max(self.peak_pss.get(pid, 0), pss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, str]:
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    # numpy's SIMD sorts (the replay check's) differ with and without AVX-512: say which ran.
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    model = model or platform.processor() or "unknown"
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": f"{model}, {simd}" if simd else model,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_before": _loadavg(),
        "commit": _commit(),
    }


def _commit() -> str:
    """The code measured: HEAD, and whether the work tree differs from it."""
    try:
        head = subprocess.run(  # noqa: S603 - fixed command
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 - fixed command
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def _loadavg() -> str:
    """1-minute load average: other processes on these cores are in every figure."""
    return f"{os.getloadavg()[0]:.1f}"


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1024 / 1024:.0f} MB"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def report(results: dict[str, Any]) -> tuple[str, str]:
    """(console text, markdown) of the HTTP part."""
    m = results["machine"]
    c1, c8, c32 = results["verify"]
    json_c1 = results["verify_json_c1"]
    floor = results["floor"]
    first, more = results["enroll"]
    wire = results["wire"]
    rss = max(results["memory"]["rss"].values())
    pss = max(results["memory"]["pss"].values()) if results["memory"]["pss"] else 0
    body_kb = results["score_body_bytes"] / 1024
    lines = [
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, {m['platform']}",
        f"code: {m['commit']}",
        f"server: gunicorn {results['server']}, Postgres on 127.0.0.1, debug off; "
        f"load generator in the same machine ({results['scale']} run); 1-min load average "
        f"{m['load_before']} before, {results['load_after']} after",
        "",
        f"(b) verification, POST /api/v1/voiceprint/score/ (5 digits, {results['encoding']} "
        f"payload, {body_kb:.1f} KB body; decisions {results['decisions']})",
        f"    {c1.summary()}",
        f"    {c8.summary()}",
        f"    {c32.summary()}",
        f"    same at c=1 with JSON-array utterances ({results['score_json_bytes'] / 1024:.1f} KB"
        f" body): {json_c1.summary()}",
        "    enrollment, POST /api/v1/voiceprint/train/ (one utterance per request):",
        f"    up to the first model (30 per user): {first.summary()}",
        f"    add utterance + re-adapt:            {more.summary()}",
        "",
        "(c) wire size of one utterance body, per second of speech (mean / worst):",
    ]
    for name, label in (
        ("json", "JSON arrays"),
        ("float32", "float32 base64"),
        ("float16", "float16 base64"),
    ):
        w = wire[name]
        lines.append(
            f"    {label:<15} {w['per_second'] / 1000:6.1f} KB/s / "
            f"{w['per_second_max'] / 1000:6.1f} KB/s   (mean body {w['body_mean'] / 1000:.1f} KB)"
        )
    lines += [
        "    (raw 16 kHz 16-bit audio: 32.0 KB/s)",
        "",
        "(d) memory per gunicorn worker (peak over the run): "
        + ", ".join(
            f"pid {pid}: RSS {_mb(v)}, PSS {_mb(results['memory']['pss'].get(pid, 0))}"
            for pid, v in sorted(results["memory"]["rss"].items())
        ),
        "",
        "(e) the stack's floor, for scale: requests doing a small part of a verification's work",
        f"    GET /healthz (no database, no view):       {floor['healthz_c8'].summary()}",
        f"    GET /api/v1/me/ (token auth, DRF, 1 read): {floor['me_c1'].summary()}",
        f"    GET /api/v1/me/ (token auth, DRF, 1 read): {floor['me_c8'].summary()}",
    ]
    targets = [
        (
            "verification latency, concurrency 1",
            "p50 ≤ 15 ms, p99 ≤ 50 ms",
            f"p50 {c1.percentile(50):.1f} ms, p99 {c1.percentile(99):.1f} ms",
            c1.percentile(50) <= TARGETS["p50"] and c1.percentile(99) <= TARGETS["p99"],
        ),
        (
            "verification throughput, concurrency 8",
            "≥ 250 requests/s",
            f"{c8.rps:.0f} requests/s",
            c8.rps >= TARGETS["verify_c8"],
        ),
        (
            "enrollment (add utterance + adapt), concurrency 8",
            "≥ 150 requests/s",
            f"{more.rps:.0f} requests/s (first 30 per user: {first.rps:.0f})",
            more.rps >= TARGETS["enroll_c8"],
        ),
        (
            "wire size of features (compact encoding)",
            "≤ 12 KB per second of speech",
            f"{wire['float16']['per_second'] / 1000:.1f} KB/s float16 "
            f"({wire['json']['per_second'] / 1000:.1f} KB/s as JSON arrays)",
            wire["float16"]["per_second"] <= TARGETS["wire"],
        ),
        (
            "memory per gunicorn worker",
            "≤ 200 MB RSS",
            f"{_mb(rss)} peak RSS ({_mb(pss)} PSS)",
            rss <= TARGETS["rss"],
        ),
    ]
    lines += ["", "targets:"]
    for name, target, got, met in targets:
        lines.append(f"    {'met   ' if met else 'MISSED'} {name}: {got} (target {target})")
    console = "\n".join(lines)

    md = [
        "## Targets",
        "",
        "| measure | target | result | |",
        "| --- | --- | --- | --- |",
        *(f"| {n} | {t} | {g} | {_verdict(ok)} |" for n, t, g, ok in targets),
        "",
        "## HTTP (gunicorn + Postgres)",
        "",
        "```",
        console,
        "```",
    ]
    return console, "\n".join(md)


# Everything below this line in docs/benchmarks.md is written by hand and kept by `make bench`.
NOTES_MARKER = "<!-- analysis: written by hand, kept when make bench rewrites the figures above -->"


def write_markdown(path: Path, http_md: str, engine_report: str, results: dict[str, Any]) -> None:
    m = results["machine"]
    previous = path.read_text() if path.is_file() else ""
    notes = previous[previous.index(NOTES_MARKER) :] if NOTES_MARKER in previous else NOTES_MARKER
    text = "\n".join(
        [
            "# Benchmarks",
            "",
            f"Written by `make bench` on {dt.date.today().isoformat()}: {m['cpus']} CPUs "
            f"({m['cpu_model']}), Python {m['python']}, {m['platform']}; code {m['commit']}; "
            f"1-minute load average {m['load_before']} before the HTTP part, "
            f"{results['load_after']} after. Re-run it to refresh this file; the figures are this "
            "machine's, with the load generator (and anything else running) sharing its cores.",
            "",
            "Method: `bench/engine.py` times the engine in-process; `bench/http.py` starts the "
            "production stack (`DJANGO_DEBUG=false`, `gunicorn.conf.py`, a throwaway Postgres "
            "database), enrolls FSDD speakers over HTTP with features computed by "
            "`verification.features` (the browser's Meyda port), creates all challenges first and "
            "times only the score requests, each client sending its own users' (32 users, each "
            f"with {STEADY_STATE_ATTEMPTS} warm-up attempts first). Evaluation settings: "
            "lockout off (`VERIFICATION_LOCKOUT_FAILURES=0`), per-user throttle off "
            "(`VERIFICATION_THROTTLE_RATE`), long challenge lifetime. Part (e) times requests that "
            "do a small part of a verification's work on the same server: no verification path "
            "can be faster here.",
            "",
            http_md,
            "",
            # bench.engine prints markdown with its own heading.
            engine_report.strip() or "## Engine (in process)\n\n(bench.engine output not given)",
            "",
            notes.rstrip(),
            "",
        ]
    )
    path.write_text(text)


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a minute or so)")
    parser.add_argument("--encoding", default="float16", choices=["float16", "float32"])
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py)")
    parser.add_argument(
        "--threads", type=int, help="threads per worker (default: gunicorn.conf.py)"
    )
    parser.add_argument("--engine-report", type=Path, help="output of bench/engine.py to embed")
    parser.add_argument("--write", type=Path, help="write the markdown report here")
    parser.add_argument("--database", default="speakerauth_bench")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    scale = QUICK if args.quick else FULL

    log(
        f"bench.http: {os.cpu_count()} CPUs; computing features of "
        f"{len(FSDD_SPEAKERS)} FSDD speakers"
    )
    speakers = load_speakers(args.encoding)
    results: dict[str, Any] = {
        "machine": machine(),
        "encoding": args.encoding,
        "scale": "quick" if args.quick else "full",
        "wire": wire_sizes(speakers),
    }
    extra = {
        "VERIFICATION_LOCKOUT_FAILURES": "0",
        # A few users send thousands of requests: the per-user throttle would answer 429.
        "VERIFICATION_THROTTLE_RATE": "1000000/min",
        "VERIFICATION_CHALLENGE_TTL": "7200",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    with temporary_database(args.database) as db_url:
        env = production_env(db_url, **extra)
        release(env, collectstatic=False)
        server = Gunicorn(env, workers=args.workers, threads=args.threads)
        with server, MemorySampler(server) as memory:
            results["server"] = (
                f"{server.configured_workers()} workers x {server.configured_threads()} "
                "threads (gthread)"
            )
            tokens = create_users(env, scale.users, server.base_url)
            log(f"enrollment: {len(tokens)} users x {len(ENROLL_INDICES) * 10} utterances, c=8")
            results["enroll"] = bench_enrollment(server.base_url, tokens, speakers, scale)
            for run in results["enroll"]:
                log(f"    {run.summary()}")

            warmup = STEADY_STATE_ATTEMPTS * len(tokens)
            per_user = -(
                -(warmup + scale.verify_c1 + scale.verify_c8 + scale.verify_c32 + scale.json_c1)
                // len(tokens)
            )
            log(f"creating {per_user * len(tokens)} challenges in advance")
            challenges = create_challenges(server.base_url, tokens, per_user)
            bodies, json_bodies = score_bodies(challenges, tokens, speakers)
            results["score_body_bytes"] = statistics.fmean(len(b) for _, b in bodies)
            results["score_json_bytes"] = statistics.fmean(len(b) for _, b in json_bodies)
            send = _post("/api/v1/voiceprint/score/")

            cursor = 0

            def take(n: int, source: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
                nonlocal cursor
                chunk = source[cursor : cursor + n]
                cursor += n
                return chunk

            log(f"warm-up: {warmup} attempts ({STEADY_STATE_ATTEMPTS} per user), c=8")
            run_load(
                server.base_url, deal_by_user(take(warmup, bodies), tokens, 8), send, max_seconds=90
            )
            decisions: Counter = Counter()
            runs = []
            for concurrency, n in (
                (1, scale.verify_c1),
                (8, scale.verify_c8),
                (32, scale.verify_c32),
            ):
                items = take(n, bodies)
                run = run_load(
                    server.base_url,
                    deal_by_user(items, tokens, concurrency),
                    send,
                    max_seconds=scale.max_seconds,
                )
                runs.append(run)
                log(f"verification {run.summary()}")
            results["verify"] = runs
            json_run = run_load(
                server.base_url,
                [take(scale.json_c1, json_bodies)],
                send,
                max_seconds=scale.max_seconds,
            )
            results["verify_json_c1"] = json_run
            log(f"verification, JSON arrays: {json_run.summary()}")
            results["floor"] = bench_floor(server.base_url, tokens, scale)
            for name, run in results["floor"].items():
                log(f"floor {name}: {run.summary()}")
            decisions.update(decision_counts(env))
            results["decisions"] = dict(decisions)
        results["memory"] = {"rss": memory.peak_rss, "pss": memory.peak_pss}
    results["load_after"] = _loadavg()

    console, http_md = report(results)
    print()
    print(console, flush=True)
    if args.write:
        engine_report = args.engine_report.read_text() if args.engine_report else ""
        write_markdown(args.write, http_md, engine_report, results)
        log(f"\nwrote {args.write.relative_to(ROOT) if args.write.is_absolute() else args.write}")
    return 0


def decision_counts(env: dict[str, str]) -> dict[str, int]:
    """How the scored attempts were decided (a sanity check that the bench is not all rejects)."""
    code = (
        "import json\n"
        "from django.db.models import Count\n"
        "from verification.models import VerificationAttempt\n"
        "rows = VerificationAttempt.objects.values('decision', 'reason').annotate(n=Count('id'))\n"
        "print(json.dumps({f\"{r['decision']}/{r['reason']}\": r['n'] for r in rows}))\n"
    )
    return json.loads(
        manage(env, "shell", "--no-imports", "--command", code).strip().splitlines()[-1]
    )


if __name__ == "__main__":
    sys.exit(main())
