"""The small part of JSON Schema that tool arguments need: tool name -> schema, and a validity check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def schemas_by_name(tools: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool name -> JSON schema of its arguments, from OpenAI-format tool dicts (what bind_tools passes)."""
    out = {}
    for tool in tools:
        function = tool.get("function", tool)
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            out[function["name"]] = function.get("parameters") or {"type": "object", "properties": {}}
    return out


def _valid_value(value: Any, schema: dict[str, Any]) -> bool:
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind is None:
        return True
    kinds = kind if isinstance(kind, list) else [kind]
    for name in kinds:
        types = _JSON_TYPES.get(name)
        if types is None:
            return True  # a type we do not check
        if isinstance(value, bool) and name in ("number", "integer"):
            continue
        if isinstance(value, types):
            return True
        if name == "integer" and isinstance(value, float) and value.is_integer():
            return True
    return False


def valid_arguments(args: Any, schema: dict[str, Any]) -> bool:
    """A small JSON-schema check: required keys present, no unknown keys, top-level value types."""
    if not isinstance(args, dict):
        return False
    properties: dict[str, Any] = schema.get("properties") or {}
    if any(key not in args for key in schema.get("required") or ()):
        return False
    if properties and schema.get("additionalProperties") is not True:
        if any(key not in properties for key in args):
            return False
    return all(_valid_value(value, properties[key]) for key, value in args.items() if key in properties)
