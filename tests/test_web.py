"""The web chat UI is served by the app, under the same security headers, without swallowing 404s."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

import agentserver.web

APP_JS = Path(agentserver.web.__file__).parent / "static" / "app.js"
NODE = shutil.which("node")
# Loads app.js in a bare context (no DOM: its only top-level DOM use is a listener) and feeds events
# to the answer it renders, exactly as `send()` does.
ANSWER_SCRIPT = """
const vm = require("vm"), fs = require("fs");
const context = { document: { addEventListener() {} }, sessionStorage: { getItem() { return null; } } };
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[1], "utf8") + ";globalThis.AnswerText = AnswerText;", context);
const answer = new context.AnswerText();
for (const [name, data] of JSON.parse(process.argv[2])) answer.apply(name, data);
process.stdout.write(answer.text);
"""


def _shown_by_the_ui(events: list[tuple[str, dict[str, object]]]) -> str:
    assert NODE is not None
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [NODE, "-e", ANSWER_SCRIPT, str(APP_JS), json.dumps(events)], capture_output=True, text=True, check=True
    )
    return result.stdout


class TestWebUI:
    async def test_index(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert '<script src="/static/app.js" defer></script>' in response.text
        assert "script-src 'self'" in response.headers["content-security-policy"]

    async def test_assets(self, client: httpx.AsyncClient) -> None:
        script = await client.get("/static/app.js")
        style = await client.get("/static/app.css")

        assert script.status_code == style.status_code == 200
        # The UI never feeds server or model text to the HTML parser.
        assert "innerHTML" not in script.text
        assert "textContent" in script.text

    async def test_unknown_paths_are_still_json_404s(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/no/such/page")

        assert response.status_code == 404
        assert response.json() == {"error": "NotFound", "detail": "Not Found"}


@pytest.mark.skipif(NODE is None, reason="needs node to run the UI's script")
class TestStreamedAnswer:
    def test_reset_discards_what_the_failed_attempt_streamed(self) -> None:
        events: list[tuple[str, dict[str, object]]] = [
            ("token", {"content": "Echo:"}),
            ("token", {"content": " one"}),
            ("reset", {}),
            ("token", {"content": "Echo: one two"}),
            ("done", {"message_id": "m", "usage": {}}),
        ]

        assert _shown_by_the_ui(events) == "Echo: one two"

    def test_text_before_a_tool_call_survives_a_later_reset(self) -> None:
        events: list[tuple[str, dict[str, object]]] = [
            ("token", {"content": "Let me compute. "}),
            ("tool_call", {"id": "c1", "name": "calculator", "args": {}}),
            ("tool_result", {"id": "c1", "name": "calculator", "content": "42"}),
            ("token", {"content": "broken"}),
            ("reset", {}),
            ("token", {"content": "It is 42."}),
        ]

        assert _shown_by_the_ui(events) == "Let me compute. It is 42."
