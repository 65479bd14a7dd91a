"""The simulated model's structured output: the caller's JSON schema, filled with known facts.

Each property whose name says what it holds (`first_name`, `monthly_income`, `hobbies`...) gets
the matching fact, shaped to the property's type (a number or its text, a list or its items
joined); a value of the previous profile is kept where the transcript says nothing new; every
other property is the emptiest value that still fits (null, `[]`, the first enum value...). The
result always validates against the schema, as strict structured outputs guarantee.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .extractor import Facts
from .json_schema import MAX_DEPTH, blank, fits, is_object, resolve

_ALIASES = {
    "first_name": ("first_name", "firstname", "given_name", "first"),
    "last_name": ("last_name", "lastname", "surname", "family_name", "last"),
    "full_name": ("name", "full_name", "fullname", "user_name"),
    "income": (
        "income",
        "monthly_income",
        "income_monthly",
        "income_per_month",
        "salary",
        "monthly_salary",
        "monthly_pay",
    ),
    "city": ("city", "location", "home_city", "hometown", "home_town", "residence", "lives_in"),
    "job": ("job", "occupation", "profession", "job_title", "jobtitle", "work", "employment"),
    "interests": ("interests", "interest", "hobbies", "hobby", "likes"),
    "goals": ("goals", "goal", "objectives", "aims"),
}
FACT_OF_PROPERTY = {alias: fact for fact, aliases in _ALIASES.items() for alias in aliases}


def fill(schema: dict[str, Any], facts: Facts, previous: dict[str, Any] | None = None) -> Any:
    """*schema* (a strict-mode root object, or any schema) filled with *facts* over *previous*."""
    return _value(schema, schema, None, previous or {}, facts, 0)


def property_fact(facts: Facts, name: str) -> Any:
    """The fact a property called *name* holds (`firstName` and `first-name` count too)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    fact = FACT_OF_PROPERTY.get(re.sub(r"[^a-z0-9]+", "_", snake).strip("_"))
    return getattr(facts, fact) if fact else None


def _object(
    node: dict[str, Any], root: dict[str, Any], facts: Facts, previous: Any, depth: int
) -> dict[str, Any]:
    kept = previous if isinstance(previous, dict) else {}
    return {
        key: _value(child, root, property_fact(facts, key), kept.get(key), facts, depth + 1)
        for key, child in (node.get("properties") or {}).items()
    }


def _value(
    node: Any, root: dict[str, Any], fact: Any, previous: Any, facts: Facts, depth: int
) -> Any:
    """A property's value: a nested object of facts, else the fact, else the previous value,
    else blank."""
    if depth < MAX_DEPTH:
        for branch in _object_branches(node, root):
            nested = _object(branch, root, facts, previous, depth)
            if any(value not in (None, [], "") for value in nested.values()) and fits(
                nested, node, root
            ):
                return nested
    if isinstance(fact, list) and isinstance(previous, list):
        fact = previous + [item for item in fact if item not in previous]
    for known in (fact, previous):
        if known not in (None, [], ""):
            for shaped in _shapes(known):
                if fits(shaped, node, root):
                    return shaped
    return blank(node, root)


def _object_branches(node: Any, root: dict[str, Any]) -> Iterator[dict[str, Any]]:
    target = resolve(node, root) if isinstance(node, dict) else None
    if target is None:
        return
    if is_object(target):
        yield target
    for branch in target.get("anyOf") or []:
        yield from _object_branches(branch, root)


def _shapes(value: Any) -> Iterator[Any]:
    """*value*, then the other forms a model would write it in for another type."""
    yield value
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if isinstance(value, float) and value.is_integer():
            yield int(value)
        yield round(value)
        yield str(value)
    elif isinstance(value, str):
        yield [value]
        try:
            number = float(value.replace(",", ""))
        except ValueError:
            return
        yield int(number) if number.is_integer() else number
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        yield ", ".join(value)
