"""The JSON Schema subset of strict structured outputs: the API's rules for it, and a validator.

`strict_schema_problem` refuses what the real API refuses in strict mode (protocol reference,
section 11), worded about as it words it. `fits` and `blank` cover only that subset, enough for
the simulator to answer something that validates against the schema it was given without a
`jsonschema` dependency; keywords outside the subset (`format`, say) are not checked.
"""

from __future__ import annotations

import math
import re
from typing import Any

UNSUPPORTED_KEYWORDS = (
    *("allOf", "not", "if", "then", "else"),
    *("dependentRequired", "dependentSchemas"),
)
_TYPED_ENOUGH = ("type", "$ref", "anyOf", "enum", "const")
MAX_DEPTH = 10  # the API's nesting limit; also what bounds `blank` on recursive schemas

Context = tuple[str | int, ...]


def strict_schema_problem(schema: Any) -> str | None:
    """The first reason strict mode refuses *schema*, or None if it is acceptable."""
    if not isinstance(schema, dict) or "anyOf" in schema or types_of(schema) != ["object"]:
        got = schema.get("type") if isinstance(schema, dict) else None
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'."
    return _problem(schema, (), schema)


def _problem(node: Any, context: Context, root: dict[str, Any]) -> str | None:
    where = f"In context={context!r}"
    if not isinstance(node, dict):
        return f"{where}, schema must be a JSON Schema object."
    for keyword in UNSUPPORTED_KEYWORDS:
        if keyword in node:
            return f"{where}, '{keyword}' is not permitted."
    if not any(key in node for key in _TYPED_ENOUGH):
        return f"{where}, schema must have a 'type' key."
    if "$ref" in node and resolve(node, root) is None:
        return f"{where}, reference '{node['$ref']}' can't be resolved."  # UNVERIFIED wording
    if is_object(node):
        if node.get("additionalProperties") is not False:
            return f"{where}, 'additionalProperties' is required to be supplied and to be false."
        properties = node.get("properties") or {}
        required = node.get("required")
        listed = required if isinstance(required, list) else []
        missing = [key for key in properties if key not in listed]
        if missing:
            return (
                f"{where}, 'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
        unknown = [key for key in listed if key not in properties]
        if unknown:  # UNVERIFIED wording
            return f"{where}, 'required' lists '{unknown[0]}', which is not in properties."
    for key, child in _children(node):
        problem = _problem(child, (*context, *key), root)
        if problem:
            return problem
    return None


def _children(node: dict[str, Any]) -> list[tuple[Context, Any]]:
    """The subschemas of *node*, each with the path to it."""
    found: list[tuple[Context, Any]] = []
    for name in ("$defs", "definitions", "properties"):
        for key, child in (node.get(name) or {}).items():
            found.append(((name, key), child))
    if isinstance(node.get("items"), dict):
        found.append((("items",), node["items"]))
    for index, branch in enumerate(node.get("anyOf") or []):
        found.append((("anyOf", index), branch))
    return found


def types_of(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


def is_object(node: dict[str, Any]) -> bool:
    return "object" in types_of(node) or ("properties" in node and "type" not in node)


def resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any] | None:
    """*node* itself, or what its `$ref` (a local `#/...` pointer) points to."""
    ref = node.get("$ref")
    if ref is None:
        return node
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    target: Any = root
    for part in filter(None, ref[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            return None
        target = target[part]
    return target if isinstance(target, dict) else None


def fits(value: Any, node: Any, root: dict[str, Any]) -> bool:
    """Whether *value* validates against *node* (a subschema of *root*), within the subset."""
    if not isinstance(node, dict):
        return node is not False
    target = resolve(node, root)
    if target is None:
        return False
    if target is not node:
        return fits(value, target, root)
    if "anyOf" in node and not any(fits(value, branch, root) for branch in node["anyOf"]):
        return False
    if "const" in node and not _same(value, node["const"]):
        return False
    if "enum" in node and not any(_same(value, option) for option in node["enum"]):
        return False
    kinds = types_of(node)
    if kinds and not any(_is(value, kind) for kind in kinds):
        return False
    if isinstance(value, dict):
        return _object_fits(value, node, root)
    if isinstance(value, list):
        return _array_fits(value, node, root)
    if isinstance(value, str):
        return _string_fits(value, node)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_fits(value, node)
    return True


def _object_fits(value: dict[str, Any], node: dict[str, Any], root: dict[str, Any]) -> bool:
    properties = node.get("properties") or {}
    if any(key not in value for key in node.get("required") or []):
        return False
    extra = node.get("additionalProperties", True)
    for key, item in value.items():
        schema = properties.get(key, extra)
        if not fits(item, schema, root):
            return False
    return True


def _array_fits(value: list[Any], node: dict[str, Any], root: dict[str, Any]) -> bool:
    if len(value) < node.get("minItems", 0) or len(value) > node.get("maxItems", math.inf):
        return False
    return all(fits(item, node.get("items", True), root) for item in value)


def _string_fits(value: str, node: dict[str, Any]) -> bool:
    if not node.get("minLength", 0) <= len(value) <= node.get("maxLength", math.inf):
        return False
    pattern = node.get("pattern")
    return not isinstance(pattern, str) or re.search(pattern, value) is not None


def _number_fits(value: float, node: dict[str, Any]) -> bool:
    if value < node.get("minimum", -math.inf) or value > node.get("maximum", math.inf):
        return False
    if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
        return False
    if "exclusiveMaximum" in node and value >= node["exclusiveMaximum"]:
        return False
    step = node.get("multipleOf")
    return not step or math.isclose(value / step, round(value / step))


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = {"string": str, "array": list, "object": dict}.get(kind)
    return expected is not None and isinstance(value, expected)


def _same(value: Any, expected: Any) -> bool:
    """JSON equality: `true` is not `1`."""
    return value == expected and isinstance(value, bool) == isinstance(expected, bool)


def blank(node: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """A value that says "unknown" and still fits *node*: null where allowed, else the emptiest.

    Null, else the `const` or first `enum` value, else `""`, `0` (or the minimum), `false`,
    `[]` (padded to `minItems`), or an object of blanks.
    """
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return None
    target = resolve(node, root)
    if target is None:
        return None
    if target is not node:
        return blank(target, root, depth + 1)
    if fits(None, node, root):
        return None
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for branch in node.get("anyOf") or []:
        value = blank(branch, root, depth + 1)
        if fits(value, node, root):
            return value
    kinds = types_of(node) or (["object"] if is_object(node) else [])
    kind = kinds[0] if kinds else "null"
    if kind == "object":
        properties = node.get("properties") or {}
        return {key: blank(child, root, depth + 1) for key, child in properties.items()}
    if kind == "array":
        return [blank(node.get("items"), root, depth + 1)] * node.get("minItems", 0)
    if kind in ("number", "integer"):
        return _least_number(node)
    return {"string": "", "boolean": False}.get(kind)


def _least_number(node: dict[str, Any]) -> float:
    """0, unless the bounds exclude it: then the bound nearest to it."""
    least: float = 0
    if "minimum" in node:
        least = max(node["minimum"], min(0, node.get("maximum", 0)))
    elif "exclusiveMinimum" in node:
        least = max(node["exclusiveMinimum"] + 1, 0)
    elif "maximum" in node:
        least = min(node["maximum"], 0)
    elif "exclusiveMaximum" in node:
        least = min(node["exclusiveMaximum"] - 1, 0)
    return least
