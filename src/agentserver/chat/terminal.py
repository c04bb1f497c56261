"""`agentserver chat`: a terminal client for a running server (login or register, pick a session, stream).

It talks to the server over its public HTTP API only, exactly like any other client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt

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
            console.print("[bold green]agent>[/bold green] ", end="")
            try:
                for event, data in stream_events(http, session_id, message):
                    if event == "token":
                        console.print(data["content"], end="", markup=False, highlight=False)
                    elif event == "tool_call":
                        args = json.dumps(data["args"], ensure_ascii=False)
                        console.print(f"\n  [dim]→ {escape(data['name'])}({escape(args)})[/dim]")
                    elif event == "tool_result":
                        console.print(f"  [dim]← {escape(data['content'][:200])}[/dim]")
                    elif event == "done":
                        usage = data["usage"]
                        console.print(f"\n[dim]({usage['output_tokens']} tokens, {usage['model']})[/dim]")
                    elif event == "error":
                        console.print(f"\n[red]{escape(data['error'])}: {escape(data['detail'])}[/red]")
            except KeyboardInterrupt:
                console.print("\n[dim](interrupted)[/dim]")
            except (ClientError, httpx.HTTPError) as exc:
                console.print(f"\n[red]{escape(str(exc))}[/red]")
