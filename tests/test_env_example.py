"""`.env.example` documents every setting, with the default the code really uses."""

from __future__ import annotations

from pathlib import Path

from agentserver.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def _documented() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            entries[key] = value
    return entries


class TestEnvExample:
    def test_every_setting_is_documented(self) -> None:
        documented = set(_documented())
        expected = {name.upper() for name in Settings.model_fields}

        assert expected - documented == set(), "settings missing from .env.example"
        assert documented - expected == set(), ".env.example names settings that do not exist"

    def test_the_documented_values_are_the_defaults(self) -> None:
        # Loading the example must give exactly the defaults (empty means unset).
        from_example = Settings(_env_file=ENV_EXAMPLE)
        defaults = Settings(_env_file=None)

        assert from_example.model_dump() == defaults.model_dump()
