"""The busy board under load: 20 clients at once on the board page and the board JSON.

The board of bench/board_seed.py (2,000 cards, 200,000 moves over a year) is served by a
real `obeya serve` on the benchmark's database: with the web workers it starts by default
(OBEYA_WEB_WORKERS=auto, as `make run` starts it), then, for comparison, as one process.
Each of 20 threads is one client with its own connection, signed in with its own browser
session (page) or API token (JSON); each sends its next request as soon as its last one is
answered. Target: p99 100 ms or less for each endpoint.

Three runs: the page alone, the JSON alone, and both together while a person moves a card
every second (the readers go on until three moves are made), so that the board changes
under the readers and what was cached for it has to be built again. Latency is measured
by the clients, so it includes the wait in the server's queue: on a 2-core machine the
clients' own threads share the CPU with it. It is taken to the response's last byte, as
load tools take it (wrk, k6's http_req_duration): bodies are decoded afterwards, and only
one per client and run, to check them and show their sizes.
"""

from __future__ import annotations

import gzip
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connections
from django.utils import timezone

from bench import board_seed
from bench.database import migrated
from bench.serving import child_env, serve
from bench.timing import summary_ms
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.models import User

CLIENTS = 20
REQUESTS_EACH = 40  # per client and run: 800 samples for each endpoint's percentiles
WARM_UP_EACH = 3
MOVE_EVERY_S = 1.0
MOVES_AT_LEAST = 3  # the readers of the moving run read until this many moves are made
TARGET_P99_MS = 100
PAGE = f"/services/{board_seed.SLUG}/board/"
JSON = f"/api/services/{board_seed.SLUG}/board"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Client:
    """One simulated person: a connection of their own, signed in one way or the other."""

    name: str
    http: httpx.Client
    path: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    bytes_last: int = 0  # the body, as the client reads it
    wire_last: int = 0  # as it came over the wire (gzipped when the server gzips)

    def request(self, *, decode: bool = False) -> None:
        """One request, timed to the last byte of the response as it came over the wire.

        The body is decoded (gunzipped) only when ``decode`` is asked, after the clock has
        stopped: a browser decodes in a process of its own, while these 20 clients share
        one interpreter, and each one's decoding would otherwise count in the others' waits.
        """
        begin = time.perf_counter()
        try:
            with self.http.stream("GET", self.path) as response:
                wire = b"".join(response.iter_raw())
                elapsed = time.perf_counter() - begin
                status, encoding = response.status_code, response.headers.get("Content-Encoding")
        except httpx.HTTPError as error:
            self.failures.append(repr(error))
            return
        if status != 200:
            self.failures.append(f"{status} {_decoded(wire, encoding)[:200]!r}")
            return
        self.latencies.append(elapsed)
        if decode:
            self.bytes_last, self.wire_last = len(_decoded(wire, encoding)), len(wire)


def _decoded(wire: bytes, encoding: str | None) -> bytes:
    return gzip.decompress(wire) if encoding == "gzip" else wire


def _signed_in(url: str, username: str, password: str) -> httpx.Client:
    """A browser-like client after the login form (its session and CSRF cookies)."""
    http = httpx.Client(base_url=url, timeout=60)
    form = http.get("/login/").raise_for_status().text
    token = CSRF_FIELD.search(form)
    if token is None:
        raise RuntimeError("the login page has no CSRF field")
    done = http.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token[1]},
    )
    if done.status_code != 302 or "sessionid" not in http.cookies:
        raise RuntimeError(f"login as {username} failed: {done.status_code} {done.text[:300]}")
    return http


def _with_token(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _people(count: int) -> list[tuple[str, str]]:
    """``count`` readers (username, read token) besides the board's owner."""
    system = Actor(user=None, channel="system")
    people = []
    for number in range(1, count + 1):
        name = f"reader{number}"
        user = core.create_user(system, name, board_seed.PASSWORD, check_password_strength=False)
        _, token = core.create_token(system, user, name="bench", scope="read", days=1)
        people.append((name, token))
    return people


def _drive(clients: list[Client], each: int, until: Callable[[], bool] = lambda: True) -> float:
    """Every client sends ``each`` requests back to back, all at once, and goes on until
    ``until()`` holds; the wall time."""

    def work(client: Client) -> None:
        number = 0
        while number < each or not until():
            client.request(decode=number == each - 1)  # its sizes are shown
            number += 1

    threads = [threading.Thread(target=work, args=(c,), name=c.name) for c in clients]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


@contextmanager
def _mover(url: str, token: str) -> Iterator[list[float]]:
    """A person moving a card back and forth every second: each move changes the board."""
    stop = threading.Event()
    latencies: list[float] = []

    def move() -> None:
        with _with_token(url, token) as http:
            columns = ("Ready", "Backlog")
            turn = 0
            while not stop.wait(MOVE_EVERY_S):
                begin = time.perf_counter()
                moved = http.post(
                    f"/api/services/{board_seed.SLUG}/stories/S-1/moves",
                    json={"column": columns[turn % 2]},
                )
                if moved.status_code != 201:
                    raise RuntimeError(f"move refused: {moved.status_code} {moved.text}")
                latencies.append(time.perf_counter() - begin)
                turn += 1

    thread = threading.Thread(target=move, name="mover", daemon=True)
    thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        thread.join(30)


def _figures(clients: list[Client], wall_s: float) -> dict[str, object]:
    latencies = [value for client in clients for value in client.latencies]
    failures = [failure for client in clients for failure in client.failures]
    if not latencies:
        return {"n": 0, "failures": len(failures), "first_failure": failures[:1]}
    summary = summary_ms(latencies)
    return {
        **summary,
        "max_ms": round(max(latencies) * 1000, 3),
        "requests_per_s": round(len(latencies) / wall_s, 1),
        "response_kb": round(clients[0].bytes_last / 1024, 1),
        "over_the_wire_kb": round(clients[0].wire_last / 1024, 1),
        "failures": len(failures),
        "target_p99_ms": TARGET_P99_MS,
        "target_met": not failures and summary["p99_ms"] <= TARGET_P99_MS,
    }


def cpu_s(pid: int) -> float:
    """CPU time (user + system) that the server ``pid`` and its web workers have used so far."""
    total = 0
    for one in (pid, *web_workers(pid)):
        fields = Path(f"/proc/{one}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def web_workers(pid: int) -> list[int]:
    """The web worker processes of the `obeya serve` process ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                if parent == pid and b"--http-only" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # it ended while being read
    return found


def _run(
    server: int, make: Callable[[], list[Client]], mover: tuple[str, str] | None = None
) -> object:
    clients = make()
    try:
        _drive(clients, WARM_UP_EACH)  # connections, sessions, the server's caches
        for client in clients:
            client.latencies.clear()
            client.failures.clear()
        cpu_before = cpu_s(server)
        if mover is None:
            wall = _drive(clients, REQUESTS_EACH)
            moves: list[float] = []
        else:
            with _mover(*mover) as moves:
                # However fast the server answers, the readers read through a few moves.
                wall = _drive(clients, REQUESTS_EACH, lambda: len(moves) >= MOVES_AT_LEAST)
        served = sum(len(client.latencies) for client in clients)
        server_cpu_ms = (cpu_s(server) - cpu_before) * 1000
        by_path: dict[str, list[Client]] = {}
        for client in clients:
            by_path.setdefault(client.path, []).append(client)
        result: dict[str, object] = {
            f"GET {path}": _figures(group, wall) for path, group in by_path.items()
        }
        if mover is not None:
            result["card moves during the run"] = summary_ms(moves) if moves else {"n": 0}
        # What each request cost the server, apart from waiting for a CPU (the machine is
        # shared): its CPU time over the run, per request answered.
        result["server_cpu_ms_per_request"] = round(server_cpu_ms / max(1, served), 2)
        result["server_cpu_busy_share"] = round(server_cpu_ms / 1000 / wall, 2)
        return result
    finally:
        for client in clients:
            client.http.close()


def run() -> dict[str, object]:
    vendor = migrated()
    busy = board_seed.seed(timezone.now())
    readers = _people(CLIENTS)
    owner = User.objects.get(username=busy.username)
    _, write_token = core.create_token(
        Actor(user=None, channel="system"), owner, name="mover", scope="write", days=1
    )
    connections.close_all()  # the server process has the database to itself from here
    passed = {
        name: os.environ[name]
        for name in ("OBEYA_DATABASE_URL", "OBEYA_TIME_ZONE", "OBEYA_SECRET_KEY")
        if os.environ.get(name)
    }
    env = child_env(Path(settings.DATA_DIR), **passed)
    figures: dict[str, object] = {
        "database": vendor,
        "cards": board_seed.STORIES,
        "story_events": board_seed.STORIES + board_seed.MOVES,
        "clients": CLIENTS,
        "requests_per_client": REQUESTS_EACH,
        "load_average_1m_before": round(os.getloadavg()[0], 1),
    }
    default = settings.OBEYA_WEB_WORKERS
    for workers in dict.fromkeys((default, 1)):
        server = f"obeya serve --no-runners --workers {workers}"
        if workers == default:
            server += " (the default: OBEYA_WEB_WORKERS=auto)"
        log = Path(settings.DATA_DIR) / f"serve-board-load-{workers}.log"
        with serve(env, log, "--no-runners", "--workers", str(workers)) as (url, process):
            figures[server] = _served(url, process.pid, workers, readers, write_token)
    figures["load_average_1m_after"] = round(os.getloadavg()[0], 1)
    return figures


def _served(
    url: str, pid: int, workers: int, readers: list[tuple[str, str]], write_token: str
) -> dict[str, object]:
    """Every run against one server, once its ``workers`` processes all answer."""
    _wait_for_web_workers(pid, workers - 1)

    def pages(who: list[tuple[str, str]]) -> list[Client]:
        return [Client(n, _signed_in(url, n, board_seed.PASSWORD), PAGE) for n, _ in who]

    def documents(who: list[tuple[str, str]]) -> list[Client]:
        return [Client(name, _with_token(url, token), JSON) for name, token in who]

    half = CLIENTS // 2
    alone = [Client("alone", _signed_in(url, readers[0][0], board_seed.PASSWORD), PAGE)]
    alone.append(Client("alone", _with_token(url, readers[0][1]), JSON))
    figures: dict[str, object] = {
        "1 client alone (for comparison)": {
            f"GET {client.path}": _one_by_one(client) for client in alone
        }
    }
    figures["20 clients: board page"] = _run(pid, lambda: pages(readers))
    figures["20 clients: board JSON"] = _run(pid, lambda: documents(readers))
    figures["20 clients (10 page, 10 JSON) while a card moves every second"] = _run(
        pid,
        lambda: pages(readers[:half]) + documents(readers[half:]),
        mover=(url, write_token),
    )
    return figures


def _wait_for_web_workers(pid: int, count: int, timeout_s: float = 60) -> None:
    """Until ``count`` web workers of ``pid`` run, and a little more for them to listen."""
    deadline = time.monotonic() + timeout_s
    while len(web_workers(pid)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"obeya serve started {len(web_workers(pid))} of {count} workers")
        time.sleep(0.1)
    time.sleep(3.0 if count else 0.0)  # a worker takes about a second to load Django


def _one_by_one(client: Client) -> dict[str, object]:
    """One request at a time: the latency with no queue."""
    try:
        for _ in range(WARM_UP_EACH):
            client.request()
        client.latencies.clear()
        began = time.perf_counter()
        for number in range(REQUESTS_EACH):
            client.request(decode=number == REQUESTS_EACH - 1)
        return _figures([client], time.perf_counter() - began)
    finally:
        client.http.close()
