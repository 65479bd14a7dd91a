"""The HTTP edge: the app factory and everything between a request and the session layer.

- `_app.py`: `create_app`, the Quart-Trio app and the hooks every request passes
- `_handlers.py`: thin handlers that validate, call the session layer and shape the answer
- `_models.py`: request and response bodies (camelCase on the wire)
- `_request.py`: the request class (an absent body is `{}`, malformed JSON is our 400)
- `_error_handlers.py`: every error as JSON `{"error", "code"}`, never a traceback
- `_client_auth.py`: `SERVER_API_KEYS`, the bearer-key check before any handler
- `_rate_limit.py`: per-client token buckets on the paths that spend money
- `_cors.py`: `CORS_ALLOW_ORIGINS`, for browsers
- `_access_log.py`: one log line per request
- `_services.py`: what handlers are handed (settings, upstream, sessions, plugins)
"""

from ._app import create_app as create_app

__all__ = ["create_app"]
