"""The web chat UI is served by the app, under the same security headers, without swallowing 404s."""

from __future__ import annotations

import httpx


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
