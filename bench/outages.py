"""How `agentserver serve` rides out PostgreSQL going away (issue 11, cases 5 and 6), measured from outside.

- restart: the server runs on DATABASE_URL (a PostgreSQL of the benchmark's own); under a steady load
  (6 clients, each a chat turn then a session list, back to back) PostgreSQL is stopped (`pg_ctl stop`,
  fast mode: sessions are cut), left down 3 s, and started again. Recorded: every status the clients
  got, how long a refused request took, and the time from the database being back to the first 200
  (a session list, and a whole chat turn).
- kill: the server runs its embedded PostgreSQL; its postmaster is killed with SIGKILL. Recorded: the
  time until `/ready` says 503, then 200 again (the app restarts the server by itself).

Writes bench/results/outages.md. Run: `python -m bench outages`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import time
from collections import Counter
from pathlib import Path

import httpx

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.embedded_postgres import EmbeddedPostgres, postmaster_pid
from bench._server import DATA_DIR, create_users, percentile, serving

RESULTS = Path(__file__).resolve().parent / "results" / "outages.md"
JWT_SECRET = "bench-secret-" + "y" * 40
REPEATS = 3
CLIENTS = 6
DOWN_SECONDS = 3.0
COMMON_ENV = {
    "JWT_SECRET_KEY": JWT_SECRET,
    "LLM_PROVIDER": "fake",
    "MEMORY_ENABLED": "false",
    "SEARCH_PROVIDER": "none",
    "RATE_LIMIT_ENABLED": "false",
}


class Load:
    def __init__(self, http: httpx.AsyncClient, chats: list[tuple[dict[str, str], str]]) -> None:
        self.http = http
        self.chats = chats
        self.statuses: Counter[int] = Counter()
        self.statuses_while_down: Counter[int] = Counter()
        self.down = False
        self.refusal_seconds: list[float] = []
        self.stop = asyncio.Event()

    async def _client(self, headers: dict[str, str], session_id: str) -> None:
        while not self.stop.is_set():
            for method, path, body in (
                ("POST", "/api/v1/chatbot/chat", {"session_id": session_id, "message": "ping"}),
                ("GET", "/api/v1/sessions", None),
            ):
                started = time.perf_counter()
                response = await self.http.request(method, path, json=body, headers=headers)
                self.statuses[response.status_code] += 1
                if self.down:
                    self.statuses_while_down[response.status_code] += 1
                if response.status_code == 503:
                    self.refusal_seconds.append(time.perf_counter() - started)
                    await asyncio.sleep(0.05)

    async def run(self) -> None:
        await asyncio.gather(*(self._client(headers, session_id) for headers, session_id in self.chats))


async def _first_success(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], body: object
) -> float:
    started = time.monotonic()
    while (await http.request(method, path, json=body, headers=headers)).status_code != 200:  # noqa: ASYNC110 - polling from outside, as a client
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _restart_once(url: str, database_url: str, server: EmbeddedPostgres) -> dict[str, object]:
    settings = Settings(_env_file=None, jwt_secret_key=JWT_SECRET)
    users = await create_users(database_url, settings, CLIENTS + 2)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        sessions = []
        for headers in users:
            created = await http.post("/api/v1/sessions", json={"name": "outage"}, headers=headers)
            created.raise_for_status()
            sessions.append((headers, created.json()["id"]))
        load = Load(http, sessions[:CLIENTS])
        running = asyncio.create_task(load.run())
        await asyncio.sleep(2.0)
        await asyncio.to_thread(server.stop)
        load.down = True
        await asyncio.sleep(DOWN_SECONDS)
        load.down = False
        await asyncio.to_thread(server.start)
        (list_headers, _), (chat_headers, chat_session) = sessions[CLIENTS:]
        list_back, chat_back = await asyncio.gather(
            _first_success(http, "GET", "/api/v1/sessions", list_headers, None),
            _first_success(
                http, "POST", "/api/v1/chatbot/chat", chat_headers, {"session_id": chat_session, "message": "back?"}
            ),
        )
        await asyncio.sleep(2.0)
        load.stop.set()
        await running
    return {
        "statuses": dict(sorted(load.statuses.items())),
        "refusal_p50_ms": percentile(load.refusal_seconds, 0.5) * 1000 if load.refusal_seconds else None,
        "refusal_max_ms": max(load.refusal_seconds) * 1000 if load.refusal_seconds else None,
        "while_down": dict(sorted(load.statuses_while_down.items())),
        "list_back_s": list_back,
        "chat_back_s": chat_back,
    }


def _restart_rows() -> list[str]:
    server = EmbeddedPostgres(DATA_DIR / "outage-postgres")
    server.start(database="postgres")
    rows = []
    try:
        database_url = server.ensure_database("outage_bench", recreate=True)
        migrations.upgrade(database_url)
        with serving({**COMMON_ENV, "DATABASE_URL": database_url}) as url:
            for attempt in range(1, REPEATS + 1):
                result = asyncio.run(_restart_once(url, database_url, server))
                p50, worst = result["refusal_p50_ms"], result["refusal_max_ms"]
                waits = f"{p50:.0f} / {worst:.0f}" if p50 is not None and worst is not None else "no 503"
                rows.append(
                    f"| {attempt} | {result['statuses']} | {result['while_down']} | {waits} | "
                    f"{result['list_back_s']:.2f} | {result['chat_back_s']:.2f} |"
                )
    finally:
        server.stop()
    return rows


def _kill_rows() -> list[str]:
    data_dir = DATA_DIR / "kill"
    rows = []
    with serving({**COMMON_ENV, "AGENTSERVER_DATA_DIR": str(data_dir)}) as url, httpx.Client(base_url=url) as http:
        for attempt in range(1, REPEATS + 1):
            pid = postmaster_pid(data_dir / "postgres")
            assert pid is not None
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            unready_after = None
            while True:
                status = http.get("/ready", timeout=10).status_code
                now = time.monotonic() - killed_at
                if status != 200 and unready_after is None:
                    unready_after = now
                # (Right after the kill /ready may still pass, on a backend that has not noticed yet.)
                if status == 200 and unready_after is not None and postmaster_pid(data_dir / "postgres") != pid:
                    break
                if now > 120:
                    raise RuntimeError("/ready did not come back within 120 s")
                time.sleep(0.05)
            rows.append(f"| {attempt} | {unready_after:.2f} | {now:.2f} |")
            time.sleep(2.0)
    return rows


def main() -> None:
    load_before = os.getloadavg()[0]
    restart_rows = _restart_rows()
    kill_rows = _kill_rows()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "\n".join(
            [
                "# Database outages: only 503s, and back within seconds",
                "",
                f"`python -m bench outages` on {platform.machine()}, {os.cpu_count()} CPUs (shared with other "
                f"work; load average before the run {load_before:.1f}), Python {platform.python_version()}. "
                "One `agentserver serve` process, scripted model (`LLM_PROVIDER=fake`), default pool settings.",
                "",
                f"## PostgreSQL restarted under load ({CLIENTS} clients; down {DOWN_SECONDS:.0f} s)",
                "",
                "Statuses are every answer the clients got over the whole run (before, during and after the",
                "outage), and those answered while PostgreSQL was down. A refused request is a 503",
                "`DatabaseUnavailable` with `Retry-After: 2`; its time is how long the client waited for it: a",
                "request that needs a new connection is refused at once, a turn already running waits in the",
                "pool up to DATABASE_POOL_TIMEOUT_SECONDS (5 s), and completes if PostgreSQL is back by then.",
                '"Back" is from `pg_ctl start` returning to the first 200 of a fresh client.',
                "",
                "| run | statuses | answered while down | 503 wait p50 / max (ms) | list back after (s) "
                "| chat turn back after (s) |",
                "|---|---|---|---|---|---|",
                *restart_rows,
                "",
                "## Embedded postmaster killed (`kill -9`)",
                "",
                "Seconds from the kill; `/ready` polled every 50 ms. The supervisor checks every half second,",
                "waits for the dead postmaster to be reaped, and starts the server, which first runs crash",
                "recovery (it fsyncs the data directory: most of the time on a busy disk).",
                "",
                "| run | /ready 503 after (s) | /ready 200 again after (s) |",
                "|---|---|---|",
                *kill_rows,
                "",
            ]
        )
    )
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
