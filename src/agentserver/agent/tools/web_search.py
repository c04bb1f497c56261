"""Web search: DuckDuckGo through `ddgs` by default, or a SearXNG instance (SEARCH_PROVIDER=searxng)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog
from ddgs import DDGS

log = structlog.get_logger(__name__)

MAX_RESULTS = 5
SEARCH_TIMEOUT_SECONDS = 10.0
MAX_SNIPPET_CHARS = 300


class SearchUnavailableError(RuntimeError):
    """The search backend cannot be reached (offline, blocked, down)."""


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str


class SearchBackend(Protocol):
    async def search(self, query: str, max_results: int) -> list[SearchResult]: ...


def _result(title: Any, url: Any, snippet: Any) -> SearchResult:
    return SearchResult(str(title or "")[:200], str(url or "")[:500], str(snippet or "")[:MAX_SNIPPET_CHARS])


class DuckDuckGoSearch:
    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        def run() -> list[dict[str, Any]]:
            with DDGS(timeout=int(SEARCH_TIMEOUT_SECONDS)) as ddgs:
                return list(ddgs.text(query, max_results=max_results))

        try:
            # ddgs is synchronous: keep it off the event loop, and bound it.
            rows = await asyncio.wait_for(asyncio.to_thread(run), SEARCH_TIMEOUT_SECONDS + 2)
        except Exception as exc:
            raise SearchUnavailableError(type(exc).__name__) from exc
        return [_result(r.get("title"), r.get("href"), r.get("body")) for r in rows]


class SearxngSearch:
    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        try:
            response = await self.client.get(
                f"{self.base_url}/search",
                params={"q": query, "format": "json"},
                timeout=SEARCH_TIMEOUT_SECONDS,
            )
            response.raise_for_status()
            rows = response.json().get("results", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise SearchUnavailableError(type(exc).__name__) from exc
        return [_result(r.get("title"), r.get("url"), r.get("content")) for r in rows[:max_results]]


def format_results(query: str, results: list[SearchResult]) -> str:
    if not results:
        return f"No results for {query!r}."
    lines = [f"{i}. {r.title}\n   {r.url}\n   {r.snippet}" for i, r in enumerate(results, 1)]
    return "\n".join(lines)
