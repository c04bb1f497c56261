"""The operations of an OpenAPI document and their fields, for the fuzzers (no network, no app: a dict in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Location = Literal["path", "query", "header", "cookie", "json", "form"]
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Field:
    location: Location
    name: str
    schema: dict[str, Any]
    required: bool

    @property
    def is_string(self) -> bool:
        return "string" in schema_types(self.schema)


@dataclass
class Operation:
    method: str
    path: str
    fields: list[Field] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def body(self) -> Literal["json", "form"] | None:
        kinds = {f.location for f in self.fields} & {"json", "form"}
        return "json" if "json" in kinds else "form" if "form" in kinds else None


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`s (local ones, as FastAPI writes them)."""
    while "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def schema_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (resolved) schema admits, looking into anyOf/oneOf (Optional[...] fields)."""
    found: set[str] = set()
    kind = schema.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(kind)
    for key in ("anyOf", "oneOf", "allOf"):
        for member in schema.get(key, []):
            found |= schema_types(member)
    return found


def _flatten(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A field schema with its `$ref`s and Optional wrapping resolved, keeping the non-null member."""
    schema = resolve(document, schema)
    for key in ("anyOf", "oneOf"):
        members = [resolve(document, m) for m in schema.get(key, []) if resolve(document, m).get("type") != "null"]
        if members:
            return {**members[0], **{k: v for k, v in schema.items() if k not in (key, "type")}}
    return schema


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation with its parameters and top-level body fields (JSON or form)."""
    found = []
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            spec = item.get(method)
            if spec is None:
                continue
            operation = Operation(method.upper(), path)
            for parameter in spec.get("parameters", []):
                parameter = resolve(document, parameter)
                operation.fields.append(
                    Field(
                        parameter["in"],
                        parameter["name"],
                        _flatten(document, parameter.get("schema", {})),
                        bool(parameter.get("required")),
                    )
                )
            content = spec.get("requestBody", {}).get("content", {})
            bodies: tuple[tuple[str, Location], ...] = (
                ("application/json", "json"),
                ("application/x-www-form-urlencoded", "form"),
            )
            for media_type, location in bodies:
                if media_type not in content:
                    continue
                body = resolve(document, content[media_type].get("schema", {}))
                required = set(body.get("required", []))
                for name, schema in body.get("properties", {}).items():
                    operation.fields.append(Field(location, name, _flatten(document, schema), name in required))
            found.append(operation)
    return found


def body_string_fields(document: dict[str, Any]) -> set[str]:
    """Names of the string fields of every request body (JSON and form)."""
    return {
        f.name
        for operation in operations(document)
        for f in operation.fields
        if f.location in ("json", "form") and f.is_string
    }
