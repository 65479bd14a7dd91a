"""The REST side of the upstream (OpenAI, a compatible proxy, or the simulator).

One `OpenAIClient` per server process, handed to the app; tests and the demo hand in one
pointed at the simulator. It owns a pooled `httpx.AsyncClient` unless one is handed in.
Connection errors, 429s and 5xx are retried (see `upstream_retry`); every failure that stays
becomes an `UpstreamError` (see `errors`), with the API key scrubbed from it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import trio

from ._config import Settings
from ._errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamNotConfigured,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
    redact,
    secret_prefix,
)
from ._metrics import Metrics, upstream_endpoint
from ._upstream_http import (
    Answer,
    HttpxTransport,
    Transport,
    UpstreamConnectError,
    UpstreamHTTP,
    UpstreamHTTPError,
    UpstreamTimedOut,
)
from ._upstream_retry import RetryPolicy, send_with_retries
from ._version import __version__

logger = logging.getLogger("realtime_trio.upstream")


@dataclass(frozen=True)
class ClientSecret:
    """An ephemeral key as minted upstream, with the answer it came in."""

    value: str
    expires_at: int
    raw: dict[str, Any]

    @property
    def prefix(self) -> str:
        """What may be logged of the secret."""
        return secret_prefix(self.value)


UPSTREAM_MAX_CONNECTIONS = 32
_NOT_FOUND = 404


class OpenAIClient:
    """Calls the upstream REST API with the server's API key.

    Requests go through the lean keep-alive client (`_upstream_http.UpstreamHTTP`), or through
    httpx when a proxy is configured for the upstream (`HTTPS_PROXY`/`HTTP_PROXY`, minus
    `NO_PROXY`) or an httpx client is handed in. Plugins' tools get an httpx client of their
    own (`http`), which follows the usual environment (proxies, certificates).

    Args:
        settings: base URL, API key, timeouts and proxies.
        http: an `httpx.AsyncClient` to send the upstream requests through instead (tests hand
            one with a `MockTransport`); the caller then closes it.
        transport: a `Transport` to send them through instead (a test's TLS context, say).

    Resource handling: use as an async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        transport: Transport | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._retry_policy = RetryPolicy.from_settings(settings)
        headers = {"User-Agent": f"realtime-trio/{__version__}"}
        timeout = httpx.Timeout(
            settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
        )
        # Keep as many connections alive as a busy replica uses at once: httpx's default (20)
        # makes every request beyond it open a new connection, DNS lookup included.
        limits = httpx.Limits(
            max_connections=UPSTREAM_MAX_CONNECTIONS,
            max_keepalive_connections=UPSTREAM_MAX_CONNECTIONS,
        )
        self._tools_http = httpx.AsyncClient(timeout=timeout, headers=headers, limits=limits)
        proxy = settings.upstream_proxy()
        if transport is not None:
            self._transport: Transport = transport
        elif http is not None:
            self._transport = HttpxTransport(settings.openai_base_url, http, owned=False)
        elif proxy is not None:
            proxied = httpx.AsyncClient(
                timeout=timeout, headers=headers, limits=limits, proxy=proxy, trust_env=False
            )
            self._transport = HttpxTransport(settings.openai_base_url, proxied, owned=True)
        else:
            self._transport = UpstreamHTTP(
                settings.openai_base_url,
                connect_timeout=settings.upstream_connect_timeout_seconds,
                max_connections=UPSTREAM_MAX_CONNECTIONS,
                headers=headers,
            )

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools, even from a cancelled scope (within a second)."""
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await self._transport.aclose()
            await self._tools_http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client plugins' tools share (no credentials, no base URL)."""
        return self._tools_http

    @property
    def configured(self) -> bool:
        return self._settings.openai_api_key is not None

    async def create_client_secret(self, session: dict[str, Any]) -> ClientSecret:
        """Mint an ephemeral client secret bound to *session* (`POST /realtime/client_secrets`).

        Raises:
            UpstreamError: not configured, unreachable, too slow, refused, or a malformed answer.
        """
        data = await self.post_json("/realtime/client_secrets", {"session": session})
        # GA answers carry `value`/`expires_at` at the top; older shapes nest them.
        holder = data if "value" in data else data.get("client_secret")
        if not isinstance(holder, dict):
            raise UpstreamBadResponse("Upstream client_secrets answer has no client secret value")
        value, expires_at = holder.get("value"), holder.get("expires_at")
        if not isinstance(value, str) or not value or not isinstance(expires_at, int):
            raise UpstreamBadResponse(
                "Upstream client_secrets answer has no usable value/expires_at"
            )
        secret = ClientSecret(value=value, expires_at=expires_at, raw=data)
        logger.debug("minted client secret %s expiring at %d", secret.prefix, expires_at)
        return secret

    async def hang_up(self, call_id: str) -> bool:
        """End a WebRTC or SIP call (`POST /realtime/calls/{call_id}/hangup`).

        Returns False when upstream no longer knows the call (404: the app hung up first).

        Raises:
            UpstreamError: not configured, unreachable, too slow, or refused otherwise.
        """
        path = f"/realtime/calls/{quote(call_id, safe='')}/hangup"
        response = await self._post(path, None, expected=(_NOT_FOUND,))
        if response.status_code == _NOT_FOUND:
            logger.debug("upstream call %s was already gone", call_id)
            return False
        logger.debug("hung up call %s", call_id)
        return True

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST *body* to *path* under `OPENAI_BASE_URL` and return the JSON object answered.

        A connection error, 429 or 5xx is retried (see `upstream_retry`); each attempt has
        `UPSTREAM_TIMEOUT_SECONDS`, all of them together `UPSTREAM_RETRY_TOTAL_SECONDS`.
        """
        response = await self._post(path, body)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamBadResponse(
                f"Upstream answered POST {path} with something not a JSON object"
            )
        logger.debug(
            "upstream POST %s answered %d (request %s)",
            path,
            response.status_code,
            response.headers.get("x-request-id", "-"),
        )
        return data

    async def _post(
        self, path: str, body: dict[str, Any] | None, *, expected: tuple[int, ...] = ()
    ) -> Answer:
        """POST *body* (None: an empty body) with the API key, retried as `post_json` says;
        the response, whose status is a success or one of *expected*.

        Raises:
            UpstreamError: not configured, unreachable, too slow, or another error status.
        """
        api_key = self._api_key()
        started = trio.current_time()
        try:
            response = await send_with_retries(
                partial(self._post_once, path, body, api_key), self._retry_policy, path=path
            )
        except UpstreamError as exc:
            self._count(path, None, started)
            if isinstance(exc, UpstreamUnreachable):
                logger.warning("upstream POST %s failed: %s", path, exc.message)
            raise
        self._count(path, response.status_code, started)
        if response.is_error and response.status_code not in expected:
            message, code = _error_message(response)
            message = redact(message, api_key)
            logger.warning(
                "upstream POST %s answered %d %s (request %s): %s",
                path,
                response.status_code,
                code or "-",
                response.headers.get("x-request-id", "-"),
                message,
            )
            raise UpstreamStatusError(
                f"Upstream error {response.status_code}: {message}",
                upstream_status=response.status_code,
                upstream_code=code,
            )
        return response

    def _count(self, path: str, status: int | None, started: float) -> None:
        if self._metrics is not None:
            seconds = trio.current_time() - started
            self._metrics.upstream_request(upstream_endpoint(path), status, seconds)

    async def _post_once(
        self,
        path: str,
        body: dict[str, Any] | None,
        api_key: str,
        timeout: float,  # noqa: ASYNC109 - this deadline is the one UpstreamTimeout names
    ) -> Answer:
        """One attempt, within *timeout* seconds: the answer, whatever its status.

        Raises:
            UpstreamTimeout: no answer in time (logged here: a timeout is never retried).
            UpstreamUnreachable: no connection, or it broke.
        """
        data = None if body is None else _encoded(body)
        try:
            with trio.fail_after(timeout):
                return await self._transport.post(
                    path, body=data, headers={"Authorization": f"Bearer {api_key}"}
                )
        except UpstreamConnectError as exc:
            # Nothing was sent: as safe to try again as a refused connection.
            reason = redact(str(exc), api_key)
            raise UpstreamUnreachable(f"Upstream unreachable for POST {path}: {reason}") from None
        except (trio.TooSlowError, UpstreamTimedOut):
            logger.warning("upstream POST %s timed out after %gs", path, timeout)
            raise UpstreamTimeout(
                f"Upstream did not answer POST {path} within {timeout:g} seconds"
            ) from None
        except UpstreamHTTPError as exc:
            reason = redact(str(exc) or type(exc).__name__, api_key)
            raise UpstreamUnreachable(f"Upstream unreachable for POST {path}: {reason}") from None

    def _api_key(self) -> str:
        key = self._settings.openai_api_key
        if key is None:
            raise UpstreamNotConfigured(
                "OPENAI_API_KEY is not configured: set it in the environment or in .env"
            )
        return key.get_secret_value()


def _error_message(response: Answer) -> tuple[str, str | None]:
    """Upstream's own error message and code, from OpenAI's `{"error": {...}}` shape if used."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = error.get("message")
        code = error.get("code")
        return (
            str(message) if message else response.reason_phrase or "error",
            str(code) if code else None,
        )
    text = response.text.strip()[:200]
    return text or response.reason_phrase or "error", None


def _encoded(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # what orjson does not take (an int over 64 bits, say)
        return json.dumps(body).encode()
