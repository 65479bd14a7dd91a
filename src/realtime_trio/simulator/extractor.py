"""What the simulated model understands of what a user says about themselves.

A deterministic stand-in for a model reading a transcript: a handful of plain patterns ("my name
is Ann Lee", "I earn 4,500 dollars a month", "I live in Lyon"...), applied in the order the
statements were made so that a correction wins over what it corrects. Names and places must be
capitalised words; keywords are matched in any case. It is meant to be predictable, not clever:
tests can say exactly what it will find.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zß-öø-ÿ"
_SP = "[ \t]+"
_NAME = rf"(?:Mc|Mac|O')?[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?"
_IM = rf"(?i:\bi'm|\bi{_SP}am)"
_WORD = rf"[{_UP}{_LOW}][{_UP}{_LOW}'-]*"
_CAPITALISED = rf"[{_UP}][{_UP}{_LOW}'-]*"
_PLACE = rf"{_CAPITALISED}(?:{_SP}(?:(?:de|del|da|do|la|el){_SP})?{_CAPITALISED})*"
_NUMBER = (
    r"(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?!\d|[,.]\d)"
    r"(?:[ \t]*(?P<thousand>[kK]\b|(?i:thousand)\b))?"
)
_MONEY = (
    rf"(?:(?i:about|around|roughly|approximately|almost|over|like){_SP})?(?:[$€£][ \t]*)?{_NUMBER}"
    rf"(?:[ \t]*[$€£]|{_SP}(?i:dollars|euros|pounds|bucks|usd|eur|gbp)\b)?"
    rf"(?:{_SP}(?i:net|gross|after[ \t]+taxe?s?|before[ \t]+taxe?s?))?"
)
_MONTHLY = rf"(?:{_SP}(?i:a|per|each|every){_SP}(?i:month)\b|{_SP}(?i:monthly)\b)"
_YEARLY = rf"{_SP}(?i:(?:a|per|each|every){_SP}year|annually|yearly)\b"
# A phrase of a few words, ended by punctuation or a word that starts another clause.
_CLAUSE_END = r"(?i:and|but|or|at|in|for|with|from|so|because|who|which|that|since|to|of|on|by)\b"
_PHRASE = rf"{_WORD}(?:{_SP}(?!{_CLAUSE_END}){_WORD}){{0,3}}"

# Capitalised words that follow "I'm" without being a name ("I'm Sorry", as ASR may write it).
NOT_NAMES = frozenset(
    {
        *("Not", "Sorry", "Just", "So", "Here", "There", "Fine", "Good", "Great", "Okay", "Ok"),
        *("Also", "Still", "Really", "Very", "Calling", "Looking", "Interested", "From", "In"),
        *("At", "On", "The", "A", "An", "Afraid", "Glad", "Happy", "Sure", "Done", "Back"),
        *("Going", "Trying", "Well", "Hungry", "Tired", "Busy", "Ready", "New", "Single"),
        *("Married", "Retired", "Unemployed", "Home", "Sick"),
    }
)
# First words after "I'm a" that do not start a job ("I'm a bit tired", "I'm a big fan").
NOT_JOBS = frozenset(
    {
        *("bit", "little", "lot", "big", "huge", "fan", "very", "really", "pretty", "kind"),
        *("sort", "couple", "fast", "slow", "quick", "great", "good", "bad", "new", "total"),
        *("real", "member", "part"),
    }
)
NOT_THINGS = frozenset(
    {"it", "that", "this", "them", "you", "him", "her", "those", "these", "everything", "anything"}
)


@dataclass
class Facts:
    """What the user said about themselves; None (or empty) where they said nothing."""

    first_name: str | None = None
    last_name: str | None = None
    income: int | float | None = None
    city: str | None = None
    job: str | None = None
    interests: list[str] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)

    def any(self) -> bool:
        return any(value not in (None, []) for value in self.as_json().values())

    @property
    def full_name(self) -> str | None:
        return " ".join(part for part in (self.first_name, self.last_name) if part) or None

    def as_json(self) -> dict[str, Any]:
        return {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "income": self.income,
            "city": self.city,
            "job": self.job,
            "interests": list(self.interests),
            "goals": list(self.goals),
        }


Apply = Callable[[Facts, re.Match[str]], None]


def _name(facts: Facts, match: re.Match[str]) -> None:
    first, last = match.group("first"), match.groupdict().get("last")
    if first in NOT_NAMES:
        return
    facts.first_name = first
    if last and last not in NOT_NAMES:
        facts.last_name = last


def _name_part(facts: Facts, match: re.Match[str]) -> None:
    if match.group("which").lower() == "first":
        facts.first_name = match.group("value")
    else:
        facts.last_name = match.group("value")


def _income(facts: Facts, match: re.Match[str]) -> None:
    facts.income = _amount(match.group("number"), bool(match.group("thousand")))


def _city(facts: Facts, match: re.Match[str]) -> None:
    facts.city = match.group("place")


def _job(facts: Facts, match: re.Match[str]) -> None:
    job = match.group("job")
    if job.split()[0].lower() not in NOT_JOBS:
        facts.job = job


def _interests(facts: Facts, match: re.Match[str]) -> None:
    _add(facts.interests, _items(match.group("what")))


def _goals(facts: Facts, match: re.Match[str]) -> None:
    _add(facts.goals, _items(match.group("what")))


_STATEMENTS: list[tuple[re.Pattern[str], Apply]] = [
    (
        re.compile(
            rf"(?i:\bmy{_SP}name(?:{_SP}is|'s)){_SP}(?P<first>{_NAME})(?:{_SP}(?P<last>{_NAME}))?"
        ),
        _name,
    ),
    (re.compile(rf"(?i:\bi'm){_SP}(?P<first>{_NAME})(?:{_SP}(?P<last>{_NAME}))?"), _name),
    (re.compile(rf"(?i:\bi{_SP}am){_SP}(?P<first>{_NAME}){_SP}(?P<last>{_NAME})"), _name),
    (re.compile(rf"(?i:\bcall{_SP}me){_SP}(?P<first>{_NAME})"), _name),
    (
        re.compile(
            rf"(?i:\bmy{_SP}(?P<which>first|last|family){_SP}name{_SP}is){_SP}(?P<value>{_NAME})"
        ),
        _name_part,
    ),
    (
        re.compile(rf"(?i:\bmy{_SP}(?P<which>surname){_SP}is){_SP}(?P<value>{_NAME})"),
        _name_part,
    ),
    (re.compile(rf"(?i:\bi{_SP}(?:earn|make)){_SP}{_MONEY}{_MONTHLY}"), _income),
    (
        re.compile(
            rf"(?i:\bmy{_SP}(?:monthly{_SP})?(?:income|salary|pay){_SP}is){_SP}(?>{_MONEY})"
            rf"(?!{_YEARLY})"
        ),
        _income,
    ),
    (
        re.compile(rf"(?i:\bi{_SP}live{_SP}in|{_IM}{_SP}living{_SP}in){_SP}(?P<place>{_PLACE})"),
        _city,
    ),
    (
        re.compile(
            rf"(?i:\bi{_SP}work{_SP}as|{_IM}{_SP}working{_SP}as|\bmy{_SP}job{_SP}is)"
            rf"{_SP}(?:(?i:a|an|the){_SP})?(?P<job>{_PHRASE})"
        ),
        _job,
    ),
    (re.compile(rf"{_IM}{_SP}(?i:a|an){_SP}(?P<job>{_PHRASE})"), _job),
    (
        re.compile(
            rf"(?i:\bi{_SP}(?:really{_SP}|also{_SP}|absolutely{_SP})?(?:like|love|enjoy|adore))"
            rf"{_SP}(?P<what>[^.!?;\n]+)"
        ),
        _interests,
    ),
    (
        re.compile(
            rf"(?i:\bi{_SP}(?:really{_SP})?want{_SP}to|\bmy{_SP}(?:main{_SP}|big{_SP})?goals?"
            rf"{_SP}(?:is|are){_SP}to){_SP}(?P<what>[^.!?;\n]+)"
        ),
        _goals,
    ),
]
_ITEM_END = re.compile(r"(?i)\b(?:but|because|when|since|though|although|so that|if)\b.*$")
_ITEM_SPLIT = re.compile(r"(?i),|\band\b|\bor\b")
_ITEM_TAIL = re.compile(r"(?i)\s+(?:too|as well|a lot|very much|so much)$")


def extract_facts(text: str) -> Facts:
    """The facts *text* states, each from its latest statement (lists accumulate)."""
    text = text.replace("\u2019", "'")  # typographic apostrophes, as some ASR writes them
    found = sorted(
        (match.start(), index, match, apply)
        for index, (pattern, apply) in enumerate(_STATEMENTS)
        for match in pattern.finditer(text)
    )
    facts = Facts()
    for _, _, match, apply in found:
        apply(facts, match)
    return facts


def _amount(number: str, thousands: bool) -> int | float:
    value = float(number.replace(",", "")) * (1000 if thousands else 1)
    return int(value) if value.is_integer() else value


def _items(text: str) -> list[str]:
    """The things of "hiking, chess and cooking" (clauses like "because ..." cut off)."""
    items = []
    for part in _ITEM_SPLIT.split(_ITEM_END.sub("", text)):
        item = _ITEM_TAIL.sub("", part.strip())
        item = re.sub(r"(?i)^to\s+", "", item).strip()
        if item and item.lower() not in NOT_THINGS:
            items.append(item)
    return items


def _add(kept: list[str], new: list[str]) -> None:
    for item in new:
        if item.lower() not in (k.lower() for k in kept):
            kept.append(item)
