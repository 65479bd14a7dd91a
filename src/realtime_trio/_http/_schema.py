"""Request and response bodies checked against their models, and documented in the OpenAPI
document, at a fraction of quart-schema's cost per request.

quart-schema's `validate_request` and `validate_response` build a pydantic `TypeAdapter` for the
model on every request; on the minting path that was a visible share of the server's time. These
validate with the model's own (built once) validator, raise the same
`RequestSchemaValidationError` (so a bad body is the same 400), and leave the documentation to
quart-schema's `document_request`/`document_response`. `dumping_models` replaces
quart-schema's conversion of every answer (a `TypeAdapter` per response, for plain dicts too)
with one that dumps a model and passes anything else through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from pydantic import BaseModel, ValidationError
from quart import request
from quart_schema import RequestSchemaValidationError, document_request, document_response

Handler = Callable[..., Awaitable[Any]]
MakeResponse = Callable[[Any], Awaitable[Any]]


def takes(model: type[BaseModel]) -> Callable[[Handler], Handler]:
    """The handler gets the JSON body as *model* (keyword `data`); a body that does not fit is
    a 400 naming the field (`RequestSchemaValidationError`)."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def checked(*args: Any, **kwargs: Any) -> Any:
            data = await request.get_json()
            try:
                body = model.model_validate(data)
            except (ValidationError, TypeError, ValueError) as error:
                raise RequestSchemaValidationError(error) from None
            return await handler(*args, data=body, **kwargs)

        return document_request(model)(checked)

    return decorate


def answers(model: type[BaseModel]) -> Callable[[Handler], Handler]:
    """The handler answers with a *model* instance (documented as its 200); the app's
    `dumping_models` turns it into JSON, as it does for every model answer."""
    return document_response(model, 200)


def dumping_models(make_response: MakeResponse) -> MakeResponse:
    """*make_response* (Quart's own), with a model answer dumped as quart-schema would
    (camelCase aliases, unset optional keys left out), also inside a `(body, status)` tuple.
    Plain dicts and lists go to Quart's JSON provider as they are."""

    @wraps(make_response)
    async def converting(result: Any) -> Any:
        if isinstance(result, BaseModel):
            result = result.model_dump(by_alias=True, exclude_unset=True)
        elif isinstance(result, tuple) and result and isinstance(result[0], BaseModel):
            body = result[0].model_dump(by_alias=True, exclude_unset=True)
            result = (body, *result[1:])
        return await make_response(result)

    return converting
