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


# Loads app.js with a stand-in DOM and fetch, renders an answer that pauses for an approval, clicks
# "Approve", and reports what was requested and what the bubble shows (what a user would see).
APPROVAL_SCRIPT = """
const vm = require("vm"), fs = require("fs");
class El {
  constructor() { this.children = []; this.textContent = ""; this.className = ""; this.listeners = {};
                  this.dataset = {}; this.classList = { toggle() {} }; this.value = ""; this.disabled = false; }
  append(...items) { for (const item of items) { item.parent = this; this.children.push(item); } }
  remove() { if (this.parent) this.parent.children.splice(this.parent.children.indexOf(this), 1); }
  replaceChildren(...items) { this.children = []; this.append(...items); }
  addEventListener(type, listener) { this.listeners[type] = listener; }
  scrollIntoView() {}
  focus() {}
}
const elements = {};
const requests = [];
const frame = ([id, name, data]) => `id: ${id}\\nevent: ${name}\\ndata: ${JSON.stringify(data)}\\n\\n`;
const sse = (events) => events.map(frame).join("");
const context = {
  document: {
    addEventListener() {}, createElement: () => new El(), getElementById: (id) => (elements[id] ||= new El()),
  },
  sessionStorage: { getItem() { return "token"; } },
  Response, TextDecoderStream, URLSearchParams, JSON, Error,
  fetch: async (url, options = {}) => {
    requests.push([options.method || "GET", url, options.body || null]);
    if (url.endsWith("/resume")) return new Response(JSON.stringify({ id: "r1" }), { status: 202 });
    return new Response(sse([["6", "tool_result", { id: "c1", name: "web_search", content: "results" }],
                             ["7", "token", { content: "Found it." }],
                             ["8", "done", { message_id: "m", usage: {}, finish_reason: "complete" }]]));
  },
};
vm.createContext(context);
const exported = ";globalThis.renderer = renderer; globalThis.AnswerText = AnswerText;";
vm.runInContext(fs.readFileSync(process.argv[1], "utf8") + exported, context);
const scenario = process.argv[2];
(async () => {
  if (scenario === "picker") {
    context.fetch = async (url, options = {}) => {
      requests.push([options.method || "GET", url, options.body || null]);
      if (url === "/api/v1/assistants") {
        const assistants = [{ id: "a1", name: "agent" }, { id: "a2", name: "researcher" }];
        return new Response(JSON.stringify({ assistants }));
      }
      if (url === "/api/v1/sessions") return new Response(JSON.stringify({ id: "s1" }), { status: 201 });
      if (url.startsWith("/api/v1/sessions?")) return new Response(JSON.stringify({ sessions: [] }));
      return new Response(JSON.stringify({ messages: [], next_cursor: null }));
    };
    await vm.runInContext("loadAssistants()", context);
    const options = elements.assistant.children.map((option) => [option.value, option.textContent]);
    elements.assistant.value = "a2";
    await vm.runInContext("newSession()", context);
    process.stdout.write(JSON.stringify({ options, requests }));
    return;
  }
  const bubble = new El(), body = new El();
  const render = context.renderer(bubble, body, new context.AnswerText());
  render("token", { content: "Let me look. " }, "3");
  render("tool_call", { id: "c1", name: "web_search", args: { query: "x" } }, "4");
  render("approval_required", { run_id: "r1", tool_call_id: "c1", tool: "web_search", args: { query: "x" } }, "5");
  const row = bubble.children.find((child) => child.className === "decide");
  const buttons = row.children.map((button) => button.textContent);
  await row.children[0].listeners.click();
  process.stdout.write(JSON.stringify({
    buttons, requests, text: body.textContent, decided: !bubble.children.includes(row),
    notes: bubble.children.filter((child) => child.className === "tool").map((child) => child.textContent),
  }));
})();
"""


@pytest.mark.skipif(NODE is None, reason="needs node to run the UI's script")
class TestApprovalInTheUI:
    def test_approve_resumes_the_run_and_its_events_continue_the_same_answer(self) -> None:
        assert NODE is not None
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [NODE, "-e", APPROVAL_SCRIPT, str(APP_JS), "approval"], capture_output=True, text=True, check=True
        )
        shown = json.loads(result.stdout)

        assert shown["buttons"] == ["Approve", "Reject"]
        assert shown["requests"] == [
            ["POST", "/api/v1/runs/r1/resume", '{"decision":"approve"}'],
            ["GET", "/api/v1/runs/r1/stream?after=5", None],
        ]
        assert shown["decided"] is True
        assert shown["text"] == "Let me look. Found it."
        assert shown["notes"] == [
            '→ web_search({"query":"x"})',
            '⏸ waiting for approval: web_search({"query":"x"})',
            "← results",
        ]

    def test_a_new_chat_is_started_with_the_chosen_assistant(self) -> None:
        assert NODE is not None
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [NODE, "-e", APPROVAL_SCRIPT, str(APP_JS), "picker"], capture_output=True, text=True, check=True
        )
        shown = json.loads(result.stdout)

        assert shown["options"] == [["a1", "agent"], ["a2", "researcher"]]
        assert shown["requests"][:2] == [
            ["GET", "/api/v1/assistants", None],
            ["POST", "/api/v1/sessions", '{"assistant_id":"a2"}'],
        ]
