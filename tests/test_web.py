"""The web chat UI is served by the app, under a strict CSP, without swallowing 404s; its scripts never parse
text as HTML. The Markdown parser, the streamed-answer model and the strings are checked here with node;
tests/browser drives the whole UI in chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentserver.web

STATIC = Path(agentserver.web.__file__).parent / "static"
SCRIPTS = ("i18n.js", "markdown.js", "app.js")
NODE = shutil.which("node")
# Loads scripts in a bare context (no DOM: their only top-level DOM use is a listener) and runs `code`.
RUNNER = """
const vm = require("vm"), fs = require("fs");
const context = { document: { addEventListener() {} }, console };
vm.createContext(context);
const [files, code, input] = [JSON.parse(process.argv[1]), process.argv[2], JSON.parse(process.argv[3])];
vm.runInContext(files.map((f) => fs.readFileSync(f, "utf8")).join(";\\n") + ";\\n" + code, context);
process.stdout.write(JSON.stringify(context.run(input)));
"""


def run_js(scripts: tuple[str, ...], code: str, data: Any) -> Any:
    assert NODE is not None
    files = json.dumps([str(STATIC / name) for name in scripts])
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [NODE, "-e", RUNNER, files, code, json.dumps(data)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


class TestWebUI:
    async def test_index(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        for name in SCRIPTS:
            assert f'<script src="/static/{name}" defer></script>' in response.text
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in response.text

    async def test_the_policy_allows_nothing_inline_and_nothing_from_elsewhere(self, client: httpx.AsyncClient) -> None:
        policy = (await client.get("/")).headers["content-security-policy"]

        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["connect-src"] == "'self'"
        assert "unsafe" not in policy

    async def test_the_page_has_no_inline_script_style_or_handler(self, client: httpx.AsyncClient) -> None:
        html = (await client.get("/")).text

        assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
        assert "<style" not in html
        assert re.search(r"\s(style|on[a-z]+)=", html) is None

    async def test_assets(self, client: httpx.AsyncClient) -> None:
        for name in (*SCRIPTS, "app.css", "favicon.svg"):
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200, name
            # Nothing is fetched from another origin (the SVG namespace is a name, not a fetch).
            assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)[\w.-]+", response.text) == [], name

    async def test_the_scripts_never_parse_text_as_html(self, client: httpx.AsyncClient) -> None:
        for name in SCRIPTS:
            script = (await client.get(f"/static/{name}")).text
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
                assert sink not in script, (name, sink)
        assert "textContent" in (await client.get("/static/app.js")).text

    async def test_favicon(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/favicon.ico")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.text.startswith("<svg")

    async def test_unknown_paths_are_still_json_404s(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/no/such/page")

        assert response.status_code == 404
        assert response.json() == {"error": "NotFound", "detail": "Not Found"}


needs_node = pytest.mark.skipif(NODE is None, reason="needs node to run the UI's scripts")

ANSWER = (
    "function run(events) { const a = new AnswerText(); for (const [n, d] of events) a.apply(n, d); return a.text; }"
)


@needs_node
class TestStreamedAnswer:
    def test_reset_discards_what_the_failed_attempt_streamed(self) -> None:
        events: list[tuple[str, dict[str, object]]] = [
            ("token", {"content": "Echo:"}),
            ("token", {"content": " one"}),
            ("reset", {}),
            ("token", {"content": "Echo: one two"}),
            ("done", {"message_id": "m", "usage": {}}),
        ]

        assert run_js(SCRIPTS, ANSWER, events) == "Echo: one two"

    def test_text_before_a_tool_call_survives_a_later_reset(self) -> None:
        events: list[tuple[str, dict[str, object]]] = [
            ("token", {"content": "Let me compute. "}),
            ("tool_call", {"id": "c1", "name": "calculator", "args": {}}),
            ("tool_result", {"id": "c1", "name": "calculator", "content": "42"}),
            ("token", {"content": "broken"}),
            ("reset", {}),
            ("token", {"content": "It is 42."}),
        ]

        assert run_js(SCRIPTS, ANSWER, events) == "Let me compute. It is 42."

    def test_tool_results_go_to_their_call(self) -> None:
        events = [
            ["tool_call", {"id": "a", "name": "calculator", "args": {"expression": "1+1"}}],
            ["tool_call", {"id": "b", "name": "calculator", "args": {"expression": "2+2"}}],
            ["tool_result", {"id": "b", "name": "calculator", "content": "4"}],
            ["tool_result", {"id": "a", "name": "calculator", "content": "2"}],
        ]
        code = (
            "function run(events) { const a = new AnswerText(); for (const [n, d] of events) a.apply(n, d);"
            " return a.parts.filter((p) => p.kind === 'tool').map((p) => [p.id, p.result]); }"
        )

        assert run_js(SCRIPTS, code, events) == [["a", "2"], ["b", "4"]]


PARSE = "function run(text) { return parseMarkdown(text); }"


def parse(text: str) -> Any:
    return run_js(("markdown.js",), PARSE, text)


def texts(nodes: list[dict[str, Any]]) -> str:
    """The text an inline tree shows."""
    return "".join(n.get("text", "") or texts(n.get("children", [])) for n in nodes)


@needs_node
class TestMarkdown:
    def test_html_is_text(self) -> None:
        [paragraph] = parse('<img src=x onerror="alert(1)"> <script>alert(2)</script>')

        assert paragraph == {
            "type": "paragraph",
            "children": [{"type": "text", "text": '<img src=x onerror="alert(1)"> <script>alert(2)</script>'}],
        }

    def test_only_web_and_mail_links_are_links(self) -> None:
        [paragraph] = parse(
            "[a](javascript:alert(1)) [b](data:text/html,x) [c](https://example.com/x_(y)) [d](mailto:me@example.com)"
        )

        links = [(n["href"], texts(n["children"])) for n in paragraph["children"] if n["type"] == "link"]
        assert links == [("https://example.com/x_(y)", "c"), ("mailto:me@example.com", "d")]
        assert texts(paragraph["children"]) == "a b c d"

    def test_code_blocks_keep_their_text_and_an_unclosed_one_runs_to_the_end(self) -> None:
        blocks = parse("Look:\n\n```python\nprint('<b>')\n\n# done\n```\nafter\n\n```js\nlet x = 1")

        assert blocks[1] == {"type": "code", "lang": "python", "text": "print('<b>')\n\n# done"}
        assert blocks[2] == {"type": "paragraph", "children": [{"type": "text", "text": "after"}]}
        assert blocks[3] == {"type": "code", "lang": "js", "text": "let x = 1"}

    def test_tables_lists_and_emphasis(self) -> None:
        blocks = parse("| A | B |\n|:--|--:|\n| **1** | `2` |\n\n- one\n- two\n  1. nested\n\nsnake_case_name *em*")

        table, bullets, paragraph = blocks
        assert table["align"] == ["left", "right"]
        assert [texts(cell) for cell in table["head"]] == ["A", "B"]
        assert table["rows"][0][0] == [{"type": "strong", "children": [{"type": "text", "text": "1"}]}]
        assert table["rows"][0][1] == [{"type": "code", "text": "2"}]
        assert bullets["type"] == "ul"
        assert [item[0]["type"] for item in bullets["items"]] == ["paragraph", "paragraph"]
        assert bullets["items"][1][1]["type"] == "ol"
        assert paragraph["children"] == [
            {"type": "text", "text": "snake_case_name "},
            {"type": "em", "children": [{"type": "text", "text": "em"}]},
        ]

    def test_highlighting_keeps_every_character(self) -> None:
        code = "def f(x):\n    return \"s\" + 'q'  # note\n"
        tokens = run_js(("markdown.js",), "function run(c) { return highlight(c, 'python'); }", code)

        assert "".join(token["text"] for token in tokens) == code
        assert {"cls": "c", "text": "# note"} in tokens
        assert {"cls": "k", "text": "def"} in tokens


@needs_node
class TestStrings:
    def test_english_and_korean_have_the_same_keys(self) -> None:
        keys = run_js(("i18n.js",), "function run() { return [Object.keys(STRINGS.en), Object.keys(STRINGS.ko)]; }", 0)

        assert sorted(keys[0]) == sorted(keys[1])

    def test_every_key_the_ui_uses_exists(self) -> None:
        used = set()
        for name in ("app.js", "index.html"):
            source = (STATIC / name).read_text()
            used |= set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", source))
            used |= set(re.findall(r'data-i18n(?:-placeholder|-label)?="([\w.]+)"', source))
        known = set(run_js(("i18n.js",), "function run() { return Object.keys(STRINGS.en); }", 0))

        assert used - known == set()

    def test_the_browser_language_picks_the_strings(self) -> None:
        code = "function run(cases) { return cases.map(([stored, langs]) => pickLanguage(stored, langs)); }"
        cases = [[None, ["ko-KR", "en"]], [None, ["fr-FR", "ko"]], [None, ["fr"]], ["en", ["ko-KR"]], ["xx", []]]

        assert run_js(("i18n.js",), code, cases) == ["ko", "ko", "en", "en", "en"]
