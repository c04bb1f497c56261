"""Tools against local stubs of their services; every failure becomes a tool message for the model."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import ToolCall
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentserver.agent.tools import build_tools, run_tool_call
from agentserver.agent.tools.weather import OpenMeteo
from agentserver.agent.tools.web_search import SearxngSearch


async def geocode(request: Request) -> JSONResponse:
    if request.query_params["name"] == "Seoul":
        return JSONResponse(
            {
                "results": [
                    {
                        "name": "Seoul",
                        "admin1": "Seoul",
                        "country": "South Korea",
                        "latitude": 37.57,
                        "longitude": 126.98,
                    }
                ]
            }
        )
    return JSONResponse({"generationtime_ms": 0.1})  # Open-Meteo omits "results" when nothing matches


async def forecast(request: Request) -> JSONResponse:
    assert request.query_params["latitude"] == "37.57"
    return JSONResponse(
        {
            "current_units": {"temperature_2m": "°C", "relative_humidity_2m": "%", "wind_speed_10m": "km/h"},
            "current": {
                "time": "2026-11-25T20:00",
                "temperature_2m": 3.4,
                "relative_humidity_2m": 61,
                "weather_code": 3,
                "wind_speed_10m": 7.2,
            },
        }
    )


async def searx(request: Request) -> JSONResponse:
    assert request.query_params["format"] == "json"
    results = [{"title": f"Result {i}", "url": f"https://example.com/{i}", "content": "x" * 500} for i in range(8)]
    return JSONResponse({"query": request.query_params["q"], "results": results})


async def broken(request: Request) -> JSONResponse:
    return JSONResponse({"error": "down"}, status_code=502)


STUB = Starlette(
    routes=[
        Route("/v1/search", geocode),
        Route("/v1/forecast", forecast),
        Route("/search", searx),
        Route("/broken/search", broken),
    ]
)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=STUB), base_url="http://stub") as client:
        yield client


def call(name: str, **args: Any) -> ToolCall:
    return ToolCall(name=name, args=args, id="call_1", type="tool_call")


class TestWeather:
    async def test_current_weather(self, http: httpx.AsyncClient) -> None:
        weather = OpenMeteo(http, geocoding_url="http://stub/v1/search", forecast_url="http://stub/v1/forecast")
        tools = build_tools(search=None, weather=weather)

        message = await run_tool_call(tools, call("get_weather", location="Seoul"))

        assert message.status == "success"
        assert message.content == (
            "Seoul, Seoul, South Korea: overcast, 3.4°C, humidity 61%, wind 7.2 km/h "
            "(observed 2026-11-25T20:00 local time)"
        )

    async def test_unknown_place(self, http: httpx.AsyncClient) -> None:
        weather = OpenMeteo(http, geocoding_url="http://stub/v1/search", forecast_url="http://stub/v1/forecast")

        message = await run_tool_call(
            build_tools(search=None, weather=weather), call("get_weather", location="Atlantis")
        )

        assert message.status == "error"
        assert message.content == "Error: unknown place: 'Atlantis'"


class TestWebSearch:
    async def test_searxng_results_are_bounded(self, http: httpx.AsyncClient) -> None:
        tools = build_tools(search=SearxngSearch("http://stub", http), weather=None)

        message = await run_tool_call(tools, call("web_search", query="agentserver"))

        lines = str(message.content).splitlines()
        assert len(lines) == 5 * 3  # MAX_RESULTS, three lines each
        assert lines[0] == "1. Result 0"
        assert lines[2] == "   " + "x" * 300

    async def test_service_error_says_search_unavailable(self, http: httpx.AsyncClient) -> None:
        tools = build_tools(search=SearxngSearch("http://stub/broken", http), weather=None)

        message = await run_tool_call(tools, call("web_search", query="anything"))

        assert message.status == "error"
        assert str(message.content).startswith("Error: web search unavailable: the search service cannot be reached")

    async def test_offline_says_search_unavailable(self) -> None:
        with socket.socket() as s:  # a loopback port with nothing listening: what "offline" looks like
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        async with httpx.AsyncClient() as client:
            tools = build_tools(search=SearxngSearch(f"http://127.0.0.1:{port}", client), weather=None)
            message = await run_tool_call(tools, call("web_search", query="anything"))

        assert str(message.content).startswith("Error: web search unavailable: the search service cannot be reached")


class TestRunToolCall:
    async def test_unknown_tool(self) -> None:
        message = await run_tool_call(build_tools(search=None, weather=None), call("rm_rf", path="/"))

        assert message.status == "error"
        assert message.content == "Error: unknown tool 'rm_rf'. Available: calculator."

    async def test_invalid_arguments(self) -> None:
        message = await run_tool_call(build_tools(search=None, weather=None), call("calculator", expr="1+1"))

        assert message.status == "error"
        assert str(message.content).startswith("Error: invalid arguments for calculator: expression: Field required")

    async def test_an_unexpected_exception_is_reported_without_details(self, http: httpx.AsyncClient) -> None:
        class Exploding:
            async def search(self, query: str, max_results: int) -> list[Any]:
                raise RuntimeError("secret internal detail")

        message = await run_tool_call(build_tools(search=Exploding(), weather=None), call("web_search", query="q"))

        assert message.content == "Error: web_search failed unexpectedly."
