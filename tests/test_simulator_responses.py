"""The simulator's Responses API (`POST /v1/responses`) and its model's own `extract_profile`
calls on a voice call, over real sockets.

Every answer is checked against the SDK's `Response` model (and for keys it does not declare)
before anything else is asserted on it: see `checked_response`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from openai.types.responses import Response

from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator
from realtime_trio.simulator.validation import undeclared_keys
from test_simulator_calls import TRANSCRIBED, WAIT, create_call, mint, sideband, types

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "first_name": {"type": ["string", "null"]},
        "last_name": {"type": ["string", "null"]},
        "income": {"type": ["number", "null"], "description": "Monthly income."},
    },
    "required": ["first_name", "last_name", "income"],
    "additionalProperties": False,
}
SYSTEM = (
    "You extract facts the USER has stated about themselves from a voice conversation "
    "transcript. Use null for anything the user has not said.\n\nPrevious profile: {previous}"
)
NO_PROFILE = {"first_name": None, "last_name": None, "income": None}
PROFILE_TOOL = {
    "type": "function",
    "name": "extract_profile",
    "description": "Record what the user said about themselves.",
    "parameters": {"type": "object", "properties": {}},
}
# The API's `store` is in its reference's Response example, not in the SDK 3.57 model.
_SENT_THOUGH_UNDECLARED = {"store"}


def extraction(
    lines: list[str],
    *,
    schema: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
    name: str = "user_profile",
    strict: bool = True,
) -> dict[str, Any]:
    """A request the way the server's extraction sends it: the transcript as `USER:` lines."""
    return {
        "model": "gpt-4.1-mini",
        "input": [
            {"role": "system", "content": SYSTEM.format(previous=json.dumps(previous or {}))},
            {"role": "user", "content": "Transcript:\n" + "\n".join(lines)},
        ],
        "text": {
            "format": {
                "type": "json_schema",
                "name": name,
                "schema": schema if schema is not None else PROFILE_SCHEMA,
                "strict": strict,
            }
        },
        "store": False,
    }


def checked_response(answer: httpx.Response) -> dict[str, Any]:
    """The JSON of a 200 answer, after checking it is an SDK `Response` with no unknown keys."""
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    model = Response.model_validate(body)
    extras = [path for path in undeclared_keys(model) if path not in _SENT_THOUGH_UNDECLARED]
    assert extras == []
    assert "output_text" not in body  # the SDK's property, not a field of the API
    return body


def output_text(body: dict[str, Any]) -> str:
    """What `Response.output_text` would be, from the raw JSON."""
    return Response.model_validate(body).output_text


@pytest.fixture
async def http(simulator: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator.url, timeout=WAIT) as client:
        yield client


async def create(http: httpx.AsyncClient, body: Any, **kwargs: Any) -> httpx.Response:
    with trio.fail_after(WAIT):
        return await http.post("/v1/responses", json=body, headers=AUTH, **kwargs)


# -- structured extraction ------------------------------------------------------------------


async def test_a_profile_is_extracted_from_the_users_lines(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    request = extraction(
        [
            "USER: Hi, my name is Ann Lee.",
            "ASSISTANT: Nice to meet you, Ann! My name is Max Power, I'm your assistant.",
            "USER: I earn 4,500 dollars a month and I'd like to save more.",
        ],
        previous=NO_PROFILE,
    )

    body = checked_response(await create(http, request))

    assert output_text(body) == '{"first_name":"Ann","last_name":"Lee","income":4500}'
    assert re.fullmatch(r"resp_[0-9a-f]+", body["id"])
    message = body["output"][0]
    assert re.fullmatch(r"msg_[0-9a-f]+", message["id"])
    assert body["output"] == [
        {
            "type": "message",
            "id": message["id"],
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "annotations": [],
                    "text": '{"first_name":"Ann","last_name":"Lee","income":4500}',
                }
            ],
        }
    ]
    assert body["object"] == "response"
    assert (body["status"], body["error"], body["incomplete_details"]) == ("completed", None, None)
    assert body["created_at"] <= body["completed_at"]
    assert body["model"] == "gpt-4.1-mini"
    assert body["store"] is False
    assert body["metadata"] == {}
    assert (body["tools"], body["tool_choice"], body["parallel_tool_calls"]) == ([], "auto", True)
    assert body["text"] == {
        "format": {
            "type": "json_schema",
            "description": None,
            "name": "user_profile",
            "schema": PROFILE_SCHEMA,
            "strict": True,
        },
        "verbosity": "medium",
    }
    usage = body["usage"]
    assert usage["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["input_tokens"] > usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    recorded = simulator.state.requests_to("/v1/responses")
    assert [r.body for r in recorded] == [request]
    assert recorded[0].headers["authorization"].startswith("Bearer sk-simul")
    assert list(simulator.state.responses.answered) == [body]


async def test_a_later_statement_wins(http: httpx.AsyncClient) -> None:
    request = extraction(
        [
            "USER: I'm Jon Smyth.",
            "ASSISTANT: Thanks, Jon.",
            "USER: Sorry, my name is John Smith. I make 3,000 a month.",
            "USER: Actually I make $3.5k a month.",
        ]
    )

    body = checked_response(await create(http, request))

    assert output_text(body) == '{"first_name":"John","last_name":"Smith","income":3500}'


async def test_a_wider_schema_is_filled_and_unknown_fields_are_blank(
    http: httpx.AsyncClient,
) -> None:
    nullable = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    schema = {
        "type": "object",
        "properties": {
            "name": nullable,
            "monthly_income": {"type": ["string", "null"]},
            "location": {"$ref": "#/$defs/text"},
            "occupation": nullable,
            "hobbies": {"type": "array", "items": {"type": "string"}},
            "goals": {"type": "array", "items": {"type": "string"}},
            "favourite_colour": nullable,
            "pets": {"type": "array", "items": {"type": "string"}},
            "mood": {"type": "string", "enum": ["calm", "upset"]},
            "age": {"type": ["integer", "null"]},
            "contact": {
                "type": "object",
                "properties": {"email": {"type": ["string", "null"]}},
                "required": ["email"],
                "additionalProperties": False,
            },
        },
        "required": [
            *("name", "monthly_income", "location", "occupation", "hobbies", "goals"),
            *("favourite_colour", "pets", "mood", "age", "contact"),
        ],
        "additionalProperties": False,
        "$defs": {"text": {"type": ["string", "null"]}},
    }
    request = {
        "model": "gpt-4.1-mini",
        "input": (
            "My name is Eve Moreau. I live in Rio de Janeiro and I work as a nurse at the "
            "clinic. I earn about 2,800 euros a month. I love painting and jazz. "
            "I want to run a marathon."
        ),
        "text": {
            "format": {"type": "json_schema", "name": "wide", "schema": schema, "strict": True}
        },
    }

    body = checked_response(await create(http, request))

    assert json.loads(output_text(body)) == {
        "name": "Eve Moreau",
        "monthly_income": "2800",
        "location": "Rio de Janeiro",
        "occupation": "nurse",
        "hobbies": ["painting", "jazz"],
        "goals": ["run a marathon"],
        "favourite_colour": None,
        "pets": [],
        "mood": "calm",
        "age": None,
        "contact": {"email": None},
    }
    assert list(json.loads(output_text(body))) == schema["required"]
    assert body["store"] is True  # the API's default


async def test_the_previous_profile_is_kept_where_nothing_new_is_said(
    http: httpx.AsyncClient,
) -> None:
    previous = {"first_name": "Ann", "last_name": "Lee", "income": 4500}
    request = extraction(["USER: Things changed: I make 5,000 a month now."], previous=previous)
    request["input"] = [
        {
            "role": "developer",
            "content": [{"type": "input_text", "text": request["input"][0]["content"]}],
        },
        {
            "role": "user",
            "content": [{"type": "input_text", "text": request["input"][1]["content"]}],
        },
    ]

    body = checked_response(await create(http, request))

    assert output_text(body) == '{"first_name":"Ann","last_name":"Lee","income":5000}'


FACTS_SCHEMA = {
    "type": "object",
    "properties": {
        "first_name": {"type": ["string", "null"]},
        "last_name": {"type": ["string", "null"]},
        "income": {"type": ["number", "null"]},
        "city": {"type": ["string", "null"]},
        "job": {"type": ["string", "null"]},
        "interests": {"type": "array", "items": {"type": "string"}},
        "goals": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["first_name", "last_name", "income", "city", "job", "interests", "goals"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("said", "found"),
    [
        ("My name's Ann Lee.", {"first_name": "Ann", "last_name": "Lee"}),
        ("I\u2019m Bea O'Brien, hi.", {"first_name": "Bea", "last_name": "O'Brien"}),
        ("I am Carl Jung.", {"first_name": "Carl", "last_name": "Jung"}),
        ("Just call me Dee.", {"first_name": "Dee"}),
        (
            "My first name is Eve. My last name is Moreau.",
            {"first_name": "Eve", "last_name": "Moreau"},
        ),
        ("My name is Fay. Call me Gus.", {"first_name": "Gus"}),
        ("I'm Sorry, I'm tired.", {}),
        ("I'm a bit tired.", {}),
        ("I make 4.5k a month.", {"income": 4500}),
        ("I earn around $3,250.50 per month.", {"income": 3250.5}),
        ("My monthly income is 5200 euros.", {"income": 5200}),
        ("My income is 60,000 a year.", {}),
        ("I earn 60k a year.", {}),
        ("I live in San Francisco with my cat.", {"city": "San Francisco"}),
        ("I'm a teacher and I love it.", {"job": "teacher"}),
        ("I work as an air traffic controller at JFK.", {"job": "air traffic controller"}),
        (
            "I like hiking, chess and cooking too. I really enjoy jazz because it relaxes me.",
            {"interests": ["hiking", "chess", "cooking", "jazz"]},
        ),
        (
            "I want to buy a house and retire early. My goal is to learn Spanish.",
            {"goals": ["buy a house", "retire early", "learn Spanish"]},
        ),
        ("I'd like to cancel my order. I don't like waiting.", {}),
    ],
)
async def test_what_the_extractor_understands(
    http: httpx.AsyncClient, said: str, found: dict[str, Any]
) -> None:
    request = extraction([f"USER: {said}"], schema=FACTS_SCHEMA, name="facts")

    body = checked_response(await create(http, request))

    blank = {key: None for key in FACTS_SCHEMA["properties"]} | {"interests": [], "goals": []}
    assert json.loads(output_text(body)) == blank | found


async def test_json_object_mode_answers_the_facts(http: httpx.AsyncClient) -> None:
    request = {
        "model": "gpt-4.1-mini",
        "instructions": "Answer in JSON.",
        "input": "I'm Ann Lee and I live in Lyon.",
        "text": {"format": {"type": "json_object"}},
    }

    body = checked_response(await create(http, request))
    refused = await create(http, {**request, "instructions": "Answer."})

    assert json.loads(output_text(body)) == {
        "first_name": "Ann",
        "last_name": "Lee",
        "income": None,
        "city": "Lyon",
        "job": None,
        "interests": [],
        "goals": [],
    }
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "input"


async def test_without_a_schema_the_answer_is_plain_text(http: httpx.AsyncClient) -> None:
    body = checked_response(await create(http, {"model": "gpt-4.1-mini", "input": "Hello?"}))

    assert output_text(body) == "This is a simulated response from the offline OpenAI simulator."
    assert body["text"] == {"format": {"type": "text"}, "verbosity": "medium"}


# -- refusals of the request ------------------------------------------------------------------

MISSING_INCOME = {**PROFILE_SCHEMA, "required": ["first_name", "last_name"]}
NESTED_OPEN = {
    "type": "object",
    "properties": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }
    },
    "required": ["address"],
    "additionalProperties": False,
}
DEFS_ALL_OF = {
    "type": "object",
    "properties": {"pay": {"$ref": "#/$defs/money"}},
    "required": ["pay"],
    "additionalProperties": False,
    "$defs": {"money": {"allOf": [{"type": "number"}]}},
}
CONDITIONAL = {
    **PROFILE_SCHEMA,
    "if": {"properties": {"income": {"type": "null"}}},
    "then": {"required": ["first_name"]},
}


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            MISSING_INCOME,
            "In context=(), 'required' is required to be supplied and to be an array including "
            "every key in properties. Missing 'income'.",
        ),
        (
            NESTED_OPEN,
            "In context=('properties', 'address'), 'additionalProperties' is required to be "
            "supplied and to be false.",
        ),
        (
            {"anyOf": [PROFILE_SCHEMA, {"type": "null"}]},
            "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"None\"'.",
        ),
        (DEFS_ALL_OF, "In context=('$defs', 'money'), 'allOf' is not permitted."),
        (CONDITIONAL, "In context=(), 'if' is not permitted."),
        (
            {**PROFILE_SCHEMA, "properties": {**PROFILE_SCHEMA["properties"], "income": {}}},
            "In context=('properties', 'income'), schema must have a 'type' key.",
        ),
    ],
)
async def test_a_strict_schema_breaking_the_rules_is_a_400(
    http: httpx.AsyncClient, simulator: RunningSimulator, schema: dict[str, Any], problem: str
) -> None:
    answer = await create(http, extraction(["USER: I'm Ann."], schema=schema))

    assert answer.status_code == 400
    assert answer.json() == {
        "error": {
            "message": f"Invalid schema for response_format 'user_profile': {problem}",
            "type": "invalid_request_error",
            "param": "text.format.schema",
            "code": "invalid_json_schema",
        }
    }
    assert list(simulator.state.responses.answered) == []


async def test_a_schema_outside_strict_mode_is_not_held_to_its_rules(
    http: httpx.AsyncClient,
) -> None:
    request = extraction(["USER: My name is Ann Lee."], schema=MISSING_INCOME, strict=False)

    body = checked_response(await create(http, request))

    assert output_text(body) == '{"first_name":"Ann","last_name":"Lee","income":null}'
    assert body["text"]["format"]["strict"] is False


@pytest.mark.parametrize(
    ("name", "message", "code"),
    [
        (
            "user profile",
            "Invalid 'text.format.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "invalid_value",
        ),
        (
            "p" * 65,
            "Invalid 'text.format.name': string too long. Expected a string with maximum "
            "length 64, but got a string with length 65 instead.",
            "string_above_max_length",
        ),
    ],
)
async def test_a_bad_format_name_is_a_400(
    http: httpx.AsyncClient, name: str, message: str, code: str
) -> None:
    answer = await create(http, extraction(["USER: Hi."], name=name))

    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": "text.format.name",
        "code": code,
    }


def _with(**changes: Any) -> dict[str, Any]:
    request = extraction(["USER: Hi."])
    request.update(changes)
    return request


def _format_with(**changes: Any) -> dict[str, Any]:
    request = extraction(["USER: Hi."])
    request["text"]["format"].update(changes)
    return request


@pytest.mark.parametrize(
    ("request_body", "param", "code"),
    [
        (_with(temprature=0.2), "temprature", "unknown_parameter"),
        (_format_with(bogus=1), "text.format.bogus", "unknown_parameter"),
        (
            _with(input=[{"role": "user", "content": "Hi.", "name": "ann"}]),
            "input[0].name",
            "unknown_parameter",
        ),
        (
            _with(tools=[{**PROFILE_TOOL, "strict": True, "parameters": {}, "extra": 1}]),
            "tools[0].extra",
            "unknown_parameter",
        ),
        (_with(max_output_tokens="500"), "max_output_tokens", "invalid_type"),
        (_with(tools={"type": "function"}), "tools", "invalid_type"),
        (_with(store="no"), "store", "invalid_type"),
        (_with(tools=[{"type": "function", "name": 7}]), "tools[0].name", "invalid_type"),
        (_with(stream=True), "stream", "unsupported_value"),
        ({"input": "Hi."}, "model", "missing_required_parameter"),
    ],
)
async def test_a_request_the_sdk_types_refuse_is_a_400(
    http: httpx.AsyncClient, request_body: dict[str, Any], param: str, code: str
) -> None:
    answer = await create(http, request_body)

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (
        param,
        code,
        "invalid_request_error",
    )
    assert param in error["message"]


async def test_streaming_is_refused_in_so_many_words(http: httpx.AsyncClient) -> None:
    answer = await create(http, _with(stream=True))

    assert answer.json()["error"]["message"] == (
        "'stream': true is not supported by the offline simulator; send false or leave it out."
    )


async def test_a_body_that_is_not_json_is_a_400(http: httpx.AsyncClient) -> None:
    with trio.fail_after(WAIT):
        answer = await http.post(
            "/v1/responses",
            content=b"{not json",
            headers={**AUTH, "Content-Type": "application/json"},
        )

    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("We could not parse the JSON body")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, None), ("Bearer sk-wrong-key-0123456789", "invalid_api_key"), ("sk-no-scheme", None)],
)
async def test_a_request_without_a_standard_key_is_a_401(
    http: httpx.AsyncClient, authorization: str | None, code: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with trio.fail_after(WAIT):
        answer = await http.post("/v1/responses", json=_with(), headers=headers)

    assert answer.status_code == 401
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    assert "sk-wrong-key-0123456789" not in error["message"]


async def test_a_client_secret_cannot_call_the_responses_api(http: httpx.AsyncClient) -> None:
    secret = await mint(http)
    with trio.fail_after(WAIT):
        answer = await http.post(
            "/v1/responses", json=_with(), headers={"Authorization": f"Bearer {secret}"}
        )

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


# -- failures armed by a test -------------------------------------------------------------------

FULL_TEXT = '{"first_name":"Ann","last_name":"Lee","income":null}'


async def arm(http: httpx.AsyncClient, mode: str, times: int = 1) -> None:
    with trio.fail_after(WAIT):
        armed = await http.post("/_sim/responses/next", json={"mode": mode, "times": times})
    assert armed.status_code == 201
    assert armed.json() == {"armed": {"mode": mode, "times": times}}


async def test_a_refusal(http: httpx.AsyncClient) -> None:
    await arm(http, "refusal")
    request = extraction(["USER: My name is Ann Lee."])

    refused = checked_response(await create(http, request))
    normal = checked_response(await create(http, request))

    assert refused["status"] == "completed"
    assert refused["output"][0]["status"] == "completed"
    assert refused["output"][0]["content"] == [
        {"type": "refusal", "refusal": "I'm sorry, I cannot help with that."}
    ]
    assert output_text(refused) == ""
    assert output_text(normal) == FULL_TEXT


async def test_an_incomplete_answer(http: httpx.AsyncClient) -> None:
    await arm(http, "incomplete")
    request = {**extraction(["USER: My name is Ann Lee."]), "max_output_tokens": 16}

    body = checked_response(await create(http, request))

    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["completed_at"] is None
    assert body["output"][0]["status"] == "incomplete"
    text = output_text(body)
    assert text == FULL_TEXT[: len(FULL_TEXT) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert body["usage"]["output_tokens"] == 16


async def test_an_answer_that_is_not_json(http: httpx.AsyncClient) -> None:
    await arm(http, "invalid_json")

    body = checked_response(await create(http, extraction(["USER: My name is Ann Lee."])))

    assert body["status"] == "completed"
    assert output_text(body) == FULL_TEXT[: len(FULL_TEXT) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(output_text(body))


async def test_a_failed_response_is_a_200(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    simulator.state.responses.arm("failed", times=2)
    request = extraction(["USER: My name is Ann Lee."])

    first = checked_response(await create(http, request))
    second = checked_response(await create(http, request))
    third = checked_response(await create(http, request))

    for body in (first, second):
        assert body["status"] == "failed"
        assert body["error"] == {
            "code": "server_error",
            "message": "The model failed to generate a response.",
        }
        assert (body["output"], body["usage"], body["completed_at"]) == ([], None, None)
    assert third["status"] == "completed"


async def test_armed_modes_are_used_in_order_and_can_be_cleared(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    await arm(http, "refusal")
    await arm(http, "failed", times=2)
    listed = (await http.get("/_sim/responses/next")).json()
    assert listed == {"armed": [{"mode": "refusal", "times": 1}, {"mode": "failed", "times": 2}]}
    request = extraction(["USER: Hi."])

    first = checked_response(await create(http, request))
    cleared = await http.delete("/_sim/responses/next")
    after = checked_response(await create(http, request))

    assert first["output"][0]["content"][0]["type"] == "refusal"
    assert cleared.status_code == 204
    assert after["status"] == "completed"
    assert simulator.state.responses.armed == []
    with pytest.raises(ValueError, match="unknown mode"):
        simulator.state.responses.arm("sulk")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body", [{"mode": "sulk"}, {"mode": "failed", "times": 0}, {"mode": "failed", "tims": 1}]
)
async def test_arming_an_unknown_mode_is_a_400(
    http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    answer = await http.post("/_sim/responses/next", json=body)

    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"


async def test_faults_fail_and_slow_the_responses_api(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    armed = await http.post("/_sim/faults", json={"path": "/v1/responses", "status": 500})
    assert armed.status_code == 201
    request = extraction(["USER: My name is Ann Lee."])

    failed = await create(http, request)
    served = await create(http, request)
    await http.post("/_sim/faults", json={"path": "/v1/responses", "delay_seconds": 30})
    with pytest.raises(httpx.ReadTimeout):
        await create(http, request, timeout=0.2)

    assert failed.status_code == 500
    assert failed.json() == {
        "error": {
            "message": "Simulated failure (500)",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert output_text(checked_response(served)) == FULL_TEXT
    recorded = simulator.state.requests_to("/v1/responses")
    assert [r.body for r in recorded] == [request, request, request]
    assert simulator.state.faults == []


# -- the model calls extract_profile by itself -------------------------------------------------


async def _register_profile_tool(client: Any) -> None:
    await client.send(
        {"type": "session.update", "session": {"type": "realtime", "tools": [PROFILE_TOOL]}}
    )
    await client.until("session.updated")


async def test_a_user_sharing_a_fact_makes_the_model_call_extract_profile(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await create_call(http, await mint(http, TRANSCRIBED))
    async with sideband(simulator, call_id) as client:
        await _register_profile_tool(client)

        with trio.fail_after(WAIT):
            answer = await http.post(
                f"/_sim/calls/{call_id}/user",
                json={
                    "text": "Hi, my name is Ann Lee.",
                    "respond": True,
                    "transcriptionDelayMs": 50,
                },
            )
        events = await client.until("response.done")
        transcribed = await client.until("conversation.item.input_audio_transcription.completed")

    assert answer.status_code == 200
    result = answer.json()
    assert set(result) == {"itemId", "responseId", "callId"}
    # Voice activity starts the response at the commit; the transcription arrives after it.
    assert types(events) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    arguments_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert (arguments_done["name"], arguments_done["arguments"]) == ("extract_profile", "{}")
    assert arguments_done["call_id"] == result["callId"]
    done = events[-1]["response"]
    assert (done["id"], done["status"]) == (result["responseId"], "completed")
    assert done["output"] == [
        {
            "id": done["output"][0]["id"],
            "object": "realtime.item",
            "type": "function_call",
            "status": "completed",
            "name": "extract_profile",
            "call_id": result["callId"],
            "arguments": "{}",
        }
    ]
    item_added = events[8]
    assert item_added["previous_item_id"] == result["itemId"]
    assert transcribed[-1]["item_id"] == result["itemId"]
    assert transcribed[-1]["transcript"] == "Hi, my name is Ann Lee."


async def test_a_user_sharing_nothing_gets_a_reply(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await create_call(http, await mint(http, TRANSCRIBED))
    async with sideband(simulator, call_id) as client:
        await _register_profile_tool(client)

        with trio.fail_after(WAIT):
            answer = await http.post(
                f"/_sim/calls/{call_id}/user",
                json={"text": "Where is my order 1234?", "respond": True},
            )
        events = await client.until("response.done")
        if "conversation.item.input_audio_transcription.completed" not in types(events):
            events += await client.until("conversation.item.input_audio_transcription.completed")

    assert set(answer.json()) == {"itemId", "responseId"}
    assert "response.function_call_arguments.done" not in types(events)
    done = next(e for e in events if e["type"] == "response.done")["response"]
    assert done["id"] == answer.json()["responseId"]
    assert done["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "Sure, I can help with that."}
    ]
    # the response starts at the commit, not once the words are transcribed (section 8)
    completed = types(events).index("conversation.item.input_audio_transcription.completed")
    assert types(events).index("response.created") < completed


async def test_without_the_tool_a_fact_gets_the_queued_reply(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await create_call(http, await mint(http, {"type": "realtime"}))
    call = simulator.state.calls[call_id]
    call.queue_reply("Nice to meet you, Ann.")
    async with sideband(simulator, call_id) as client:
        with trio.fail_after(WAIT):
            turn = await call.user_speaks("My name is Ann Lee.", respond=True)
        events = await client.until("response.done")

    response = turn.response
    assert response is not None
    assert response.kind == "message"
    assert response.call_id is None
    assert not any("transcription" in kind for kind in types(events))
    assert events[-1]["response"]["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "Nice to meet you, Ann."}
    ]
    assert list(call.replies) == []


async def test_a_user_turn_without_respond_gets_the_queued_behaviour(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await create_call(http, await mint(http, copy.deepcopy(TRANSCRIBED)))
    async with sideband(simulator, call_id) as client:
        await _register_profile_tool(client)
        answer = await http.post(
            f"/_sim/calls/{call_id}/user",
            json={"text": "My name is Ann Lee.", "transcriptionDelayMs": 100},
        )
        events = await client.until("conversation.item.input_audio_transcription.completed")

    assert set(answer.json()) == {"itemId", "responseId"}
    assert "response.function_call_arguments.done" not in types(events)
    done = next(e for e in events if e["type"] == "response.done")["response"]
    assert done["id"] == answer.json()["responseId"]
    assert done["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "Sure, I can help with that."}
    ]
    assert simulator.state.calls[call_id].active_response is None


async def test_without_voice_created_responses_a_user_turn_starts_none(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    session = copy.deepcopy(TRANSCRIBED)
    session["audio"]["input"]["turn_detection"] = {"type": "server_vad", "create_response": False}
    call_id = await create_call(http, await mint(http, session))
    async with sideband(simulator, call_id) as client:
        await _register_profile_tool(client)
        silent = await http.post(
            f"/_sim/calls/{call_id}/user", json={"text": "My name is Ann Lee."}
        )
        events = await client.until("conversation.item.input_audio_transcription.completed")
        answered = await http.post(
            f"/_sim/calls/{call_id}/user",
            json={"text": "I earn 4200 dollars a month.", "respond": True},
        )
        after = await client.until("response.done")

    assert set(silent.json()) == {"itemId"}
    assert "response.created" not in types(events)
    assert set(answered.json()) == {"itemId", "responseId", "callId"}
    # respond: the model answers once the words are transcribed, as a response.create would
    completed = types(after).index("conversation.item.input_audio_transcription.completed")
    assert completed < types(after).index("response.created")
    assert after[-1]["response"]["output"][0]["name"] == "extract_profile"
