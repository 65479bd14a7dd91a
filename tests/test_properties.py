"""Generated input at every endpoint: never a 5xx, never a traceback, never lost state.

Each test starts one server on a loopback port, wired to the simulator, and opens a few real
sessions on it (some with a live call, a sideband and a transcript). Hypothesis then throws
requests at it: arbitrary JSON, objects made of the endpoints' own field names with values of
right and wrong types, bytes that are not JSON or not UTF-8, odd `Content-Type`s, odd paths and
methods, odd `Authorization` headers; ids in bodies and paths are often those of the real
sessions (or of sessions already ended), so many requests reach live state. Every answer must be
below 500, carry no traceback, and, when it is an error, be a JSON object with a string `error`
(and `code`). After every request, the real sessions it named (and one more, in turn) must
still be there with their data (model, voice, call, profile, transcript) as the requests so far
legitimately left it; a session ended by a request (`DELETE`, `/session/close`,
`previousSessionId`) must be gone, and is replaced by a new one so later requests still find
live state. At the end every real session is checked once more.

How it runs: pytest-trio runs an `@given` async test as one `trio.run` per example, but the
later examples get the first one's Trio fixtures, already torn down (a closed client, a closed
nursery); and a server per example would keep no state between them. So each test runs
Hypothesis in a worker thread (`trio.to_thread.run_sync`) and every example sends its request
on the test's own Trio loop (`trio.from_thread.run`): one server and one set of sessions serve
all the examples of a test.

Derandomized: the examples, and so the state the sessions go through, are the same on every
run, so a failure reproduces exactly (a replay of one example alone would meet different
state) and the suite stays a stable gate. `PROPERTY_TESTS_EXPLORE=1` turns randomness back
on, with ten times the examples, to look for new failures.
"""

from __future__ import annotations

import json
import logging
import os
import string
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import trio
from hypothesis import given, note, reject, settings
from hypothesis import strategies as st

from sim_client import SimControl, live_session, new_session, wait_until

logger = logging.getLogger(__name__)

EXPLORE = bool(os.environ.get("PROPERTY_TESTS_EXPLORE"))
SERVER_KEYS = ("key-one", "key-two")


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples * (10 if EXPLORE else 1),
        deadline=None,
        derandomize=not EXPLORE,
    )


# -- what a generated request is made of --------------------------------------------------


@dataclass(frozen=True)
class SessionRef:
    """The id of the real session in slot *slot*, whichever it is when the request is sent."""

    slot: int


@dataclass(frozen=True)
class CallRef:
    """The call id of the real session in slot *slot* (any real call if it has none)."""

    slot: int


@dataclass(frozen=True)
class EndedRef:
    """The id of a session that was real and has been ended."""

    index: int


Ref = SessionRef | CallRef | EndedRef


@dataclass(frozen=True)
class Raw:
    """JSON-ish text put in as is: `NaN`, a 5000-digit number, deep nesting."""

    text: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as key/value pairs, so that a key may come twice."""

    pairs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class JSONBody:
    value: Any
    encoding: str  # "ascii" (\u escapes), "utf-8" (surrogates as CESU bytes), "utf-8-sig", "utf-16"


@dataclass(frozen=True)
class Mangled:
    """JSON text with bytes cut out of it and others put in."""

    body: JSONBody
    at: int
    cut: int
    insert: bytes


NO_ID = object()


@dataclass(frozen=True)
class Probe:
    """One generated request: `path`, then `id` percent-encoded (if any), then `suffix`."""

    method: str
    path: str
    body: JSONBody | Mangled | bytes | None = None
    content_type: str | None = None
    authorization: bytes | None = None
    query: str = ""
    id: Any = NO_ID  # text, bytes or a Ref
    suffix: str = ""


# -- strategies -----------------------------------------------------------------------------

SLOTS = 4  # two sessions with a live call and a transcript, two without a call
FIELD_NAMES = [
    "sessionId",
    "callId",
    "previousSessionId",
    "model",
    "voice",
    "enableTranscription",
    "instructions",
    "transcript",
    "session_id",
    "call_id",
    "previous_session_id",
    "enable_transcription",
]
SPECIAL_STRINGS = [
    "",
    " ",
    "\x00",
    "\ud800",
    "\udfff",
    "\ud83d\ude00",
    "null",
    "true",
    "0",
    "[]",
    "{}",
    "../..",
    "%00",
    "%ZZ",
    "\r\n",
    "\u202e",
    "\ufeff",
    "a" * 300,
    "gpt-realtime",
    "marin",
    "cedar",
    "sk-" + "x" * 40,
]
RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "-0",
    "1E-400",
    "123456789012345678901234567890",
    "1" + "0" * 5000,
    "-" + "9" * 4301,
]
URL_SAFE = string.ascii_letters + string.digits + "-_"


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of *choices*, each `(weight, strategy)` drawn that much more often."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


texts = st.one_of(
    st.text(max_size=24),
    st.text(st.characters(), max_size=12),  # surrogates and controls included
    st.sampled_from(SPECIAL_STRINGS),
)
slots = st.integers(0, SLOTS - 1)
valid_looking_ids = st.text(URL_SAFE, min_size=32, max_size=32)  # the form of the server's ids
ids = weighted(
    (3, st.builds(SessionRef, slots)),
    (1, st.builds(CallRef, slots)),
    (1, st.builds(EndedRef, st.integers(0, 50))),
    (1, valid_looking_ids),
    (1, st.text(URL_SAFE, min_size=31, max_size=33)),
    (1, texts),
)
call_ids = weighted(
    (3, st.builds(CallRef, slots)),
    (1, st.builds(SessionRef, slots)),
    (1, valid_looking_ids),
    (1, texts),
)
# Nesting around and far beyond the recursion limit: 1000 in production, but pytest and
# Hypothesis raise it (for the whole process, server included) while a test runs.
nested = st.sampled_from([5000, 25000, 1001]).flatmap(
    lambda n: st.sampled_from([Raw("[" * n + "]" * n), Raw('{"a":' * n + "1" + "}" * n)])
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    texts,
    st.sampled_from(RAW_NUMBERS).map(Raw),
    ids,
    nested,
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(st.tuples(keys, children), max_size=4).map(lambda pairs: Obj(tuple(pairs))),
    ),
    max_leaves=10,
)
# The endpoints' own fields with values of the right type (which may still be wrong values).
right_typed = {
    "sessionId": ids,
    "callId": call_ids,
    "previousSessionId": ids,
    "model": st.one_of(st.sampled_from(["gpt-realtime", "gpt-realtime-mini", ""]), texts),
    "voice": st.one_of(st.sampled_from(["marin", "cedar", "alloy", ""]), texts),
    "enableTranscription": st.booleans(),
    "instructions": texts,
    "transcript": texts,
}


def as_object(fields: dict[str, Any]) -> Obj:
    return Obj(tuple(fields.items()))


well_typed_objects = st.fixed_dictionaries({}, optional=right_typed).map(as_object)
# ... and with values of any type, so that one field at a time (or several) is wrong.
mixed_objects = st.fixed_dictionaries(
    {}, optional={name: st.one_of(values, json_values) for name, values in right_typed.items()}
).map(as_object)
# Any of the names (camelCase or snake_case, each maybe twice), with any values.
field_objects = st.lists(
    st.tuples(st.sampled_from(FIELD_NAMES), st.one_of(ids, json_values)), max_size=5
).map(lambda pairs: Obj(tuple(pairs)))
encodings = st.sampled_from(["ascii", "utf-8", "utf-8-sig", "utf-16"])
json_bodies = st.builds(
    JSONBody,
    weighted((3, well_typed_objects), (2, mixed_objects), (1, field_objects), (2, json_values)),
    weighted((4, st.sampled_from(["ascii", "utf-8"])), (1, encodings)),
)
bodies = weighted(
    (6, json_bodies),
    (2, st.builds(JSONBody, nested, st.just("ascii"))),
    (
        1,
        st.builds(
            Mangled, json_bodies, st.integers(0, 400), st.integers(0, 4), st.binary(max_size=3)
        ),
    ),
    (1, st.binary(max_size=64)),
    (
        1,
        st.builds(
            lambda chunk, n: chunk * n, st.binary(min_size=1, max_size=8), st.integers(1, 10000)
        ),
    ),
    (1, st.none()),
)
content_types = weighted(
    (3, st.sampled_from([None, "application/json"])),
    (
        1,
        st.sampled_from(
            [
                "application/json; charset=utf-8",
                "application/json; charset=latin-1",
                "text/plain",
                "multipart/form-data; boundary=bogus",
                "multipart/form-data",
                "application/x-www-form-urlencoded",
                "application/octet-stream",
                'application/json; charset="',
                ";;;",
            ]
        ),
    ),
)
# What may stand in the `{id}` of a path: any text (percent-encoded), or the bytes of a
# malformed one.
path_ids = st.one_of(ids, st.binary(max_size=12))
POST_ENDPOINTS = [
    "/token",
    "/session",
    "/session/call",
    "/session/renew",
    "/session/close",
    "/extract-profile",
]
# The fields each endpoint requires: objects that have them reach its handler more often.
REQUIRED = {
    "/session/call": ("sessionId", "callId"),
    "/session/renew": ("sessionId",),
    "/session/close": ("sessionId",),
    "/extract-profile": ("sessionId",),
}


def post_probes(path: str) -> st.SearchStrategy[Probe]:
    required = REQUIRED.get(path, ())
    complete_objects = st.fixed_dictionaries(
        {name: right_typed[name] for name in required},
        optional={name: values for name, values in right_typed.items() if name not in required},
    ).map(as_object)
    endpoint_bodies = weighted(
        (2, st.builds(JSONBody, complete_objects, st.sampled_from(["ascii", "utf-8"]))),
        (3, bodies),
    )
    return st.builds(Probe, st.just("POST"), st.just(path), endpoint_bodies, content_types)


body_probes = weighted(
    (6, st.sampled_from(POST_ENDPOINTS).flatmap(post_probes)),
    (
        2,
        st.builds(
            Probe,
            st.sampled_from(["GET", "DELETE"]),
            st.just("/session/"),
            bodies,
            content_types,
            id=path_ids,
        ),
    ),
    (1, st.builds(Probe, st.just("GET"), st.just("/healthz"), bodies, content_types)),
)

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"]
KNOWN_PATHS = [
    *POST_ENDPOINTS,
    "/healthz",
    "/tools",
    "/openapi.json",
    "/docs",
    "/session/",
    "//token",
    "/token/",
    "/",
]
segments = st.one_of(st.text(max_size=10), st.binary(max_size=6), st.sampled_from(["..", ".", ""]))
queries = st.one_of(
    st.just(""),
    st.lists(st.tuples(texts, texts), max_size=3).map(
        lambda pairs: "&".join(f"{encode_id(k)}={encode_id(v)}" for k, v in pairs)
    ),
)
path_probes = st.one_of(
    st.builds(Probe, st.sampled_from(METHODS), st.just("/session/"), id=path_ids, query=queries),
    st.builds(
        Probe,
        st.sampled_from(METHODS),
        st.just("/session/"),
        id=path_ids,
        suffix=segments.map(lambda segment: "/" + encode_id(segment)),
    ),
    st.builds(Probe, st.sampled_from(METHODS), st.sampled_from(KNOWN_PATHS), query=queries),
    st.builds(
        Probe,
        st.sampled_from(METHODS),
        st.lists(segments, min_size=1, max_size=4).map(
            lambda parts: "/" + "/".join(encode_id(part) for part in parts)
        ),
        query=queries,
    ),
)

# Header values as h11 sends them: visible Latin-1 characters with inner spaces and tabs.
header_texts = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=30,
)
authorizations = weighted(
    (2, st.sampled_from(["Bearer key-one", "bearer key-two"])),
    (1, st.none()),
    (
        1,
        st.sampled_from(
            [
                "BEARER key-one",
                "Bearer  key-one",
                "Bearer\tkey-one",
                "Bearer key-one extra",
                "Bearer key-on",
                "Bearer key-one\xa0",
                "Bearer key-two,key-one",
                "Basic a2V5LW9uZQ==",
                "Bearer",
                "key-one",
                "Token key-one",
                "Bearer clé",
            ]
        ),
    ),
    (
        1,
        st.builds(
            lambda scheme, token: f"{scheme} {token}",
            st.sampled_from(["Bearer", "bearer", "Basic", "", "Bearer,"]),
            header_texts,
        ),
    ),
    (1, header_texts),
).map(lambda text: None if text is None else text.encode("latin-1", "replace").strip(b" \t"))
AUTH_ENDPOINTS = [
    ("GET", "/healthz", NO_ID),
    ("GET", "/openapi.json", NO_ID),
    ("POST", "/token", NO_ID),
    ("POST", "/session/renew", NO_ID),
    ("GET", "/session/", SessionRef(0)),
    ("OPTIONS", "/token", NO_ID),
    ("GET", "/nope", NO_ID),
]
auth_probes = st.builds(
    lambda endpoint, body, authorization: Probe(
        endpoint[0], endpoint[1], body=body, authorization=authorization, id=endpoint[2]
    ),
    st.sampled_from(AUTH_ENDPOINTS),
    st.one_of(st.none(), st.builds(JSONBody, mixed_objects, st.just("ascii"))),
    authorizations,
)


def encode_id(value: str | bytes) -> str:
    """*value* percent-encoded for a path segment; lone surrogates as their UTF-8-ish bytes."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote(raw, safe="")


# -- the real sessions and what is expected of them ------------------------------------------


@dataclass
class Tracked:
    """A real session and the state the requests so far have left it in."""

    live: bool  # made with a call in the simulator, a sideband and a transcript
    session_id: str
    call_id: str | None
    view: dict[str, Any]  # what GET /session/{id} must keep answering (the fields compared)


COMPARED = ("sessionId", "callId", "model", "voice", "profile", "transcript")


@dataclass
class Sent:
    """A probe as it went out, with the real sessions whose ids it holds."""

    method: str
    url: str
    content: bytes | None
    headers: dict[str, bytes]
    slots: frozenset[int]

    def describe(self) -> str:
        content = (
            self.content
            if self.content is None or len(self.content) < 300
            else (self.content[:300] + b"...")
        )
        return f"{self.method} {self.url} headers={self.headers} content={content!r}"

    def sent_json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.content or b"{}")
        except (ValueError, RecursionError):
            return {}
        return value if isinstance(value, dict) else {}

    def field(self, camel: str, snake: str) -> Any:
        sent = self.sent_json()
        return sent[camel] if camel in sent else sent.get(snake)


class NotSent(Exception):
    """httpx refused to send a generated request (a URL or header it cannot put on the wire)."""


class World:
    """The server, its real sessions, and the check made of every answer."""

    def __init__(
        self,
        fuzz: httpx.AsyncClient,
        admin: httpx.AsyncClient,
        sim: SimControl,
        *,
        keys: tuple[str, ...] = (),
    ) -> None:
        self.fuzz = fuzz  # sends the generated requests exactly as generated
        self.admin = admin  # the test's own requests (with an API key when one is needed)
        self.sim = sim
        self.keys = keys  # the server's SERVER_API_KEYS
        self.slots: list[Tracked] = []
        self.ended: list[str] = []
        self.requests = 0
        self.recent: deque[str] = deque(maxlen=SLOTS)  # for the message of a failure
        self.statuses: dict[int, int] = {}

    async def open(self) -> None:
        for slot in range(SLOTS):
            self.slots.append(await self.new_session(live=slot < 2))

    async def new_session(self, *, live: bool) -> Tracked:
        if live:
            session_id, call_id = await live_session(
                self.admin, self.sim, voice="cedar", enableTranscription=True
            )
            # voice activity answers the user with the queued reply
            await self.sim.drive(call_id, "replies", text="Nice to meet you, Ada.")
            await self.sim.drive(call_id, "user", text="My name is Ada Lovelace.")

            async def transcribed() -> bool:
                view = await self.view(session_id)
                entries = view["transcript"]
                return len(entries) == 2 and all(e["status"] == "complete" for e in entries)

            await wait_until(transcribed)
        else:
            answer = await new_session(self.admin, model="gpt-realtime-mini", voice="marin")
            session_id, call_id = answer["sessionId"], None
        view = await self.view(session_id)
        return Tracked(live, session_id, call_id, {key: view[key] for key in COMPARED})

    async def view(self, session_id: str) -> dict[str, Any]:
        response = await self.admin.get(f"/session/{session_id}")
        assert response.status_code == 200, response.text
        return response.json()

    # -- one example ----------------------------------------------------------------------

    def render(self, probe: Probe) -> Sent:
        """The request *probe* stands for, with today's real ids in place of its refs."""
        named: set[int] = set()

        def resolve(ref: Ref) -> str:
            if isinstance(ref, EndedRef):
                value = self.ended[ref.index % len(self.ended)] if self.ended else "0" * 32
            elif isinstance(ref, SessionRef):
                value = self.slots[ref.slot].session_id
            else:  # a call id can be anything a request attached, another session's id too
                value = self.slots[ref.slot].call_id or self.slots[0].call_id or ""
            named.update(i for i, t in enumerate(self.slots) if t.session_id == value)
            return value

        def dumps(value: Any, ascii_only: bool) -> str:
            if isinstance(value, Raw):
                return value.text
            if isinstance(value, SessionRef | CallRef | EndedRef):
                value = resolve(value)
            if isinstance(value, Obj):
                members = (
                    f"{json.dumps(key, ensure_ascii=ascii_only)}:{dumps(child, ascii_only)}"
                    for key, child in value.pairs
                )
                return "{" + ",".join(members) + "}"
            if isinstance(value, list):
                return "[" + ",".join(dumps(child, ascii_only) for child in value) + "]"
            return json.dumps(value, ensure_ascii=ascii_only)

        def encode(body: JSONBody) -> bytes:
            text = dumps(body.value, ascii_only=body.encoding == "ascii")
            codec = "utf-8" if body.encoding == "ascii" else body.encoding
            return text.encode(codec, "surrogatepass")

        content: bytes | None
        if isinstance(probe.body, JSONBody):
            content = encode(probe.body)
        elif isinstance(probe.body, Mangled):
            whole = encode(probe.body.body)
            at = probe.body.at % (len(whole) + 1)
            content = whole[:at] + probe.body.insert + whole[at + probe.body.cut :]
        else:
            content = probe.body

        path = probe.path
        if probe.id is not NO_ID:
            id_value = probe.id if isinstance(probe.id, str | bytes) else resolve(probe.id)
            path += encode_id(id_value)
        path += probe.suffix
        headers: dict[str, bytes] = {}
        if probe.content_type is not None:
            headers["Content-Type"] = probe.content_type.encode()
        if probe.authorization is not None:
            headers["Authorization"] = probe.authorization
        url = path + (f"?{probe.query}" if probe.query else "")
        return Sent(probe.method, url, content, headers, frozenset(named))

    async def exchange(self, sent: Sent) -> httpx.Response:
        """Send *sent*, check the answer, then check the real sessions."""
        try:
            response = await self.fuzz.request(
                sent.method, sent.url, content=sent.content, headers=sent.headers
            )
        except (httpx.LocalProtocolError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise NotSent from exc
        self.requests += 1
        self.recent.append(f"{sent.describe()} -> {response.status_code} {response.text[:200]}")
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        # Every check runs (and every lost session is replaced) before the first failure is
        # raised, so that the examples Hypothesis runs next do not fail for this one's sake.
        failures: list[AssertionError] = []
        try:
            check_answer(sent, response)
            check_authorization(sent, response, self.keys)
        except AssertionError as failure:
            failures.append(failure)
        # The sessions it named, and one more in turn: a request must not lose a session it
        # did not name either, and checking all of them after every request costs too much.
        for slot in sorted(sent.slots | {self.requests % SLOTS}):
            try:
                await self.check_slot(slot, sent, response)
            except AssertionError as failure:
                failures.append(failure)
        if failures:
            raise failures[0]
        return response

    async def check_slot(self, slot: int, sent: Sent, response: httpx.Response) -> None:
        tracked = self.slots[slot]
        current = await self.admin.get(f"/session/{tracked.session_id}")
        if current.status_code == 404:
            # Replaced first, so that the examples Hypothesis runs next meet live state again.
            self.ended.append(tracked.session_id)
            self.slots[slot] = await self.new_session(live=tracked.live)
            recent = "\n".join(self.recent)
            assert slot in sent.slots, (
                f"session {tracked.session_id} (slot {slot}) was lost by one of the last "
                f"requests, none of which named it:\n{recent}"
            )
            assert ended_by(sent, response, tracked.session_id), (
                f"session {tracked.session_id} (slot {slot}) was lost by a request that did "
                f"not end it; the last requests:\n{recent}"
            )
            return
        assert current.status_code == 200, current.text
        self.expect(tracked, sent, response)
        view = current.json()
        assert {key: view[key] for key in COMPARED} == tracked.view, (
            f"session {tracked.session_id} (slot {slot}) changed after {sent.describe()} "
            f"-> {response.status_code} {response.text}"
        )

    def expect(self, tracked: Tracked, sent: Sent, response: httpx.Response) -> None:
        """What a successful request legitimately changed in *tracked*."""
        if sent.method != "POST" or response.status_code != 200:
            return
        if sent.url == "/session/call" and response.json()["sessionId"] == tracked.session_id:
            tracked.call_id = tracked.view["callId"] = response.json()["callId"]
        if (
            sent.url == "/extract-profile"
            and sent.field("sessionId", "session_id") == tracked.session_id
        ):
            tracked.view["profile"] = response.json()["profile"]

    async def check_all(self) -> None:
        """Every real session is still there with its data; the ended ones are gone."""
        for slot, tracked in enumerate(self.slots):
            view = await self.view(tracked.session_id)
            assert {key: view[key] for key in COMPARED} == tracked.view, f"slot {slot}"
        for session_id in self.ended:
            assert (await self.admin.get(f"/session/{session_id}")).status_code == 404
        assert (await self.admin.get("/healthz")).status_code == 200

    def run(self, probes: st.SearchStrategy[Probe], max_examples: int) -> Callable[[], None]:
        """The Hypothesis test, to be called in a worker thread."""

        @fuzz_settings(max_examples)
        @given(probe=probes)
        def one_request(probe: Probe) -> None:
            sent = self.render(probe)
            note(f"sent: {sent.describe()}")
            try:
                response = trio.from_thread.run(self.exchange, sent)
            except NotSent:
                reject()
            note(f"answer: {response.status_code} {response.text[:500]}")

        return one_request


def ended_by(sent: Sent, response: httpx.Response, session_id: str) -> bool:
    """Whether *sent*, answered with *response*, was a request to end *session_id*."""
    if sent.method == "DELETE":
        return response.status_code == 204 and sent.url == f"/session/{session_id}"
    if sent.method != "POST" or response.status_code != 200:
        return False
    if sent.url == "/session/close":
        return response.json() == {"sessionId": session_id, "closed": True}
    if sent.url == "/session":
        return sent.field("previousSessionId", "previous_session_id") == session_id
    return False


def check_authorization(sent: Sent, response: httpx.Response, keys: tuple[str, ...]) -> None:
    """A well-formed key always passes; a request without any key never does."""
    if not keys or sent.url == "/healthz" or sent.method == "OPTIONS":
        return
    given = sent.headers.get("Authorization")
    where = f"{sent.describe()} -> {response.status_code} {response.text[:500]}"
    well_formed = {f"{scheme} {key}".encode() for scheme in ("Bearer", "bearer") for key in keys}
    if given in well_formed:
        assert response.status_code != 401, where
    elif given is None or not any(key.encode() in given for key in keys):
        assert response.status_code == 401, where
        assert response.headers.get("www-authenticate") == "Bearer", where
        assert response.json()["code"] == "unauthorized", where


def check_answer(sent: Sent, response: httpx.Response) -> None:
    """The properties of every answer: below 500, no traceback, errors as JSON with `error`."""
    where = f"{sent.describe()} -> {response.status_code} {response.text[:500]}"
    assert response.status_code < 500, where
    assert "Traceback" not in response.text, where
    assert 'File "' not in response.text, where
    if response.status_code >= 400 and sent.method != "HEAD":
        assert response.headers.get("content-type", "").startswith("application/json"), where
        answer = response.json()
        assert isinstance(answer, dict), where
        assert isinstance(answer.get("error"), str), where
        assert answer["error"], where
        assert isinstance(answer.get("code"), str), where


# -- the tests --------------------------------------------------------------------------------


async def fuzz(
    url: str,
    sim: SimControl,
    probes: st.SearchStrategy[Probe],
    max_examples: int,
    *,
    api_key: str | None = None,
) -> World:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    keys = SERVER_KEYS if api_key else ()
    async with (
        httpx.AsyncClient(base_url=url, timeout=15) as fuzz_client,
        httpx.AsyncClient(base_url=url, timeout=15, headers=headers) as admin,
    ):
        world = World(fuzz_client, admin, sim, keys=keys)
        await world.open()
        await trio.to_thread.run_sync(world.run(probes, max_examples))
        await world.check_all()
    logger.info("%d requests, statuses %s", world.requests, dict(sorted(world.statuses.items())))
    return world


async def test_generated_bodies_at_every_endpoint(start_server: Any, sim: SimControl) -> None:
    url = await start_server()  # bodies over its 64 KiB limit are generated too

    world = await fuzz(url, sim, body_probes, max_examples=300)

    assert world.requests >= 300


async def test_generated_paths_and_methods(start_server: Any, sim: SimControl) -> None:
    url = await start_server()

    world = await fuzz(url, sim, path_probes, max_examples=200)

    assert world.requests >= 200


async def test_generated_authorization_headers(start_server: Any, sim: SimControl) -> None:
    url = await start_server(server_api_keys=",".join(SERVER_KEYS))

    world = await fuzz(url, sim, auth_probes, max_examples=150, api_key=SERVER_KEYS[0])

    assert world.requests >= 150
