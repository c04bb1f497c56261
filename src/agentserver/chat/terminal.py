"""`agentserver chat`: a terminal client for a running server (login or register, pick a session, stream).

It talks to the server over its public HTTP API only, exactly like any other client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.prompt import Prompt
from rich.text import Text

console = Console()
API = "/api/v1"


class ClientError(Exception):
    pass


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            message = f"{body.get('error')}: {body.get('detail')}"
        except ValueError:
            message = f"HTTP {response.status_code}"
        raise ClientError(message)
    return response.json() if response.content else None


def login(http: httpx.Client, email: str, password: str, *, register: bool) -> str:
    if register:
        response = http.post(f"{API}/auth/register", json={"email": email, "password": password})
        if response.status_code != 409:  # already registered: just log in
            _check(response)
    tokens = _check(http.post(f"{API}/auth/login", data={"username": email, "password": password}))
    return str(tokens["access_token"])


def pick_session(http: httpx.Client) -> str:
    sessions = _check(http.get(f"{API}/sessions", params={"limit": 10}))["sessions"]
    console.print("[bold]Sessions[/bold]  (0 = new)")
    for number, item in enumerate(sessions, 1):
        console.print(f"  {number}. {item['name']}  [dim]{item['updated_at'][:16]}[/dim]")
    choice = Prompt.ask("Session", default="0" if not sessions else "1")
    if choice.isdigit() and 1 <= int(choice) <= len(sessions):
        return str(sessions[int(choice) - 1]["id"])
    name = Prompt.ask("Name for the new session", default="Terminal chat")
    return str(_check(http.post(f"{API}/sessions", json={"name": name}))["id"])


def stream_events(http: httpx.Client, session_id: str, message: str) -> Iterator[tuple[str, dict[str, Any]]]:
    body = {"session_id": session_id, "message": message}
    with http.stream("POST", f"{API}/chatbot/chat/stream", json=body, timeout=None) as response:
        if response.status_code >= 400:
            response.read()
            _check(response)
        event = "message"
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield event, json.loads(line.removeprefix("data: "))


class AnswerView:
    """The answer as it streams, redrawn in place so that `reset` can take back what was shown.

    `reset` (a retried or fallback model call restarts the answer) discards the text of the current
    call; text shown before a tool call is kept (`keep()`). On a terminal the text is redrawn as it
    grows; elsewhere (a pipe, a file) each part is written once, when it is final.
    """

    def __init__(self, console: Console, prefix: Text) -> None:
        self.console = console
        self.prefix = prefix
        self.text = ""
        self._live: Live | None = None

    def token(self, content: str) -> None:
        self.text += content
        self._show()

    def reset(self) -> None:
        self.text = ""
        self._show()

    def keep(self) -> None:
        """End the current part as shown (a tool call follows it); the next part starts on its own."""
        if self._live is not None:
            self._live.stop()
            if not self.console.is_terminal:
                self.console.line()  # on a terminal, Live ends its own last line
            self._live = None
            self.prefix = Text()
        self.text = ""

    def _show(self) -> None:
        renderable = Text.assemble(self.prefix, self.text)
        if self._live is None:
            self._live = Live(renderable, console=self.console, auto_refresh=False, transient=False)
            self._live.start()
        else:
            self._live.update(renderable, refresh=True)


def render_events(console: Console, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Print one streamed answer: tokens (honouring `reset`), tool calls and results, usage or error."""
    answer = AnswerView(console, Text("agent> ", style="bold green"))
    try:
        for event, data in events:
            if event == "token":
                answer.token(data["content"])
            elif event == "reset":
                answer.reset()
            elif event == "tool_call":
                answer.keep()
                args = json.dumps(data["args"], ensure_ascii=False)
                console.print(f"  [dim]→ {escape(data['name'])}({escape(args)})[/dim]")
            elif event == "tool_result":
                console.print(f"  [dim]← {escape(data['content'][:200])}[/dim]")
            elif event == "done":
                answer.keep()
                usage = data.get("usage") or {}
                reason = data.get("finish_reason", "complete")
                note = f"{usage.get('output_tokens', 0)} tokens, {usage.get('model') or 'no model call'}"
                console.print(f"[dim]({note}{'' if reason == 'complete' else f', {reason}'})[/dim]")
            elif event == "approval_required":
                answer.keep()
                args = json.dumps(data.get("args"), ensure_ascii=False)
                console.print(
                    f"[yellow]Waiting for approval: {escape(str(data.get('tool')))}({escape(args)}) — "
                    f"POST /api/v1/runs/{escape(str(data.get('run_id')))}/resume[/yellow]"
                )
            elif event == "error":
                answer.keep()
                console.print(f"[red]{escape(data['error'])}: {escape(data['detail'])}[/red]")
    finally:
        answer.keep()


def run(url: str, email: str, password: str, register: bool) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as http:
        try:
            http.headers["Authorization"] = f"Bearer {login(http, email, password, register=register)}"
            session_id = pick_session(http)
        except (ClientError, httpx.HTTPError) as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
        console.print("[dim]Type a message; Ctrl-D or /quit to leave.[/dim]")
        while True:
            try:
                message = console.input("[bold cyan]you>[/bold cyan] ")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            if message.strip() in ("/quit", "/exit"):
                return
            if not message.strip():
                continue
            try:
                render_events(console, stream_events(http, session_id, message))
            except KeyboardInterrupt:
                console.print("\n[dim](interrupted)[/dim]")
            except (ClientError, httpx.HTTPError) as exc:
                console.print(f"\n[red]{escape(str(exc))}[/red]")
