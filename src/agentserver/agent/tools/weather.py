"""Current weather from Open-Meteo (no API key): geocode the place, then fetch the forecast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"
FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
WEATHER_TIMEOUT_SECONDS = 10.0

# WMO weather interpretation codes (Open-Meteo docs), abridged to what people ask about.
_WMO = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "drizzle",
    55: "dense drizzle",
    61: "light rain",
    63: "rain",
    65: "heavy rain",
    71: "light snow",
    73: "snow",
    75: "heavy snow",
    80: "rain showers",
    81: "heavy rain showers",
    82: "violent rain showers",
    95: "thunderstorm",
    96: "thunderstorm with hail",
    99: "thunderstorm with heavy hail",
}


class WeatherError(RuntimeError):
    """The place is unknown or the weather service failed; the message is shown to the model."""


@dataclass(frozen=True)
class OpenMeteo:
    client: httpx.AsyncClient
    geocoding_url: str = GEOCODING_URL
    forecast_url: str = FORECAST_URL

    async def _get(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.get(url, params=params, timeout=WEATHER_TIMEOUT_SECONDS)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WeatherError(
                f"weather service unavailable: it cannot be reached ({type(exc).__name__}). "
                "Tell the user the weather could not be retrieved; do not guess it."
            ) from exc
        if not isinstance(body, dict):
            raise WeatherError("weather service returned an unexpected answer")
        return body

    async def current(self, location: str) -> str:
        places = (await self._get(self.geocoding_url, {"name": location, "count": 1, "format": "json"})).get(
            "results"
        ) or []
        if not places:
            raise WeatherError(f"unknown place: {location!r}")
        place = places[0]
        forecast = await self._get(
            self.forecast_url,
            {
                "latitude": place["latitude"],
                "longitude": place["longitude"],
                "current": "temperature_2m,relative_humidity_2m,weather_code,wind_speed_10m",
                "timezone": "auto",
            },
        )
        now = forecast.get("current") or {}
        units = forecast.get("current_units") or {}
        name = ", ".join(str(p) for p in (place.get("name"), place.get("admin1"), place.get("country")) if p)
        conditions = _WMO.get(int(now.get("weather_code", -1)), "unknown conditions")
        return (
            f"{name}: {conditions}, {now.get('temperature_2m')}{units.get('temperature_2m', '°C')}, "
            f"humidity {now.get('relative_humidity_2m')}{units.get('relative_humidity_2m', '%')}, "
            f"wind {now.get('wind_speed_10m')} {units.get('wind_speed_10m', 'km/h')} "
            f"(observed {now.get('time', 'now')} local time)"
        )
