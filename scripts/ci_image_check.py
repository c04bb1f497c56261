"""Run inside the built image by scripts/ci-image.sh: `python - PORT < scripts/ci_image_check.py`.

Standard library only (the image has no test tools, which is one of the things checked). Checks, against the
server the container is running on PORT: /ready answers 200, one chat turn with the scripted model answers,
the process is not root, and the image holds no compiler, package installer or dev/test package.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

BASE = f"http://127.0.0.1:{sys.argv[1]}"
BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "clang", "make", "ld", "as", "pip", "pip3", "uv")
DEV_PACKAGES = {"pytest", "pytest-asyncio", "pytest-timeout", "pytest-cov", "ruff", "mypy", "schemathesis", "types-redis"}


def request(method: str, path: str, body: object = None, *, form: bool = False, token: str = "") -> tuple[int, dict]:
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()  # type: ignore[arg-type]
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(req, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"ci-image: FAILED: {what}")
    print(f"ci-image: ok: {what}", file=sys.stderr)


def wait_ready(deadline_s: float = 240) -> dict:
    start = time.monotonic()
    last: object = None
    while time.monotonic() - start < deadline_s:
        try:
            status, body = request("GET", "/ready")
            if status == 200:
                print(f"ci-image: /ready after {time.monotonic() - start:.1f} s: {body}", file=sys.stderr)
                return body
            last = (status, body)
        except (urllib.error.URLError, ConnectionError) as error:
            last = error
        time.sleep(1)
    sys.exit(f"ci-image: FAILED: /ready did not answer 200 within {deadline_s:.0f} s (last: {last})")


def main() -> None:
    ready = wait_ready()
    check(ready.get("status") == "ready", f"/ready 200 with status ready: {ready}")

    email, password = f"ci-{uuid.uuid4().hex[:10]}@example.com", "a long enough ci password"
    status, _ = request("POST", "/api/v1/auth/register", {"email": email, "password": password})
    check(status == 201, f"register answers 201 (got {status})")
    status, tokens = request("POST", "/api/v1/auth/login", {"username": email, "password": password}, form=True)
    check(status == 200, f"login answers 200 (got {status})")
    token = tokens["access_token"]
    status, session = request("POST", "/api/v1/sessions", {"name": "ci"}, token=token)
    check(status == 201, f"a session is created (got {status})")
    message = "Hello from the CI image check"
    status, answer = request(
        "POST", "/api/v1/chatbot/chat", {"session_id": session["id"], "message": message}, token=token
    )
    check(status == 200, f"one chat turn answers 200 (got {status}: {answer})")
    check(answer["message"] == f"You said: {message}", f"the scripted model answered: {answer['message']!r}")
    status, history = request("GET", f"/api/v1/chatbot/sessions/{session['id']}/messages", token=token)
    check([m["role"] for m in history["messages"]] == ["user", "assistant"], "the turn is stored in PostgreSQL")

    check(os.getuid() != 0, f"the server runs as uid {os.getuid()}, not root")
    found = {tool: shutil.which(tool) for tool in BUILD_TOOLS if shutil.which(tool)}
    check(found == {}, f"no compiler or package installer on PATH ({found or 'none found'})")
    installed = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions()}
    check(installed & DEV_PACKAGES == set(), "no dev or test package installed")
    check("agentserver" in installed, f"{len(installed)} packages installed, agentserver among them")


if __name__ == "__main__":
    main()
