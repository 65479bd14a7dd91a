"""`GET /inspector`: a page to watch the live sessions (`INSPECTOR_ENABLED`).

The page and its few files ship in the package (`realtime_trio/inspector/`), plain HTML, JS and
CSS: no build step, no CDN. They are open paths (`_client_auth`): the page holds no data and,
when `SERVER_API_KEYS` is set, asks for a key and sends it as a bearer token on its API calls.
Only the files found there at start-up with a known type are served, by exact name, so no
request can reach anything else.
"""

from __future__ import annotations

from importlib.resources import files

from quart import Blueprint, Response, redirect
from quart_schema import hide
from werkzeug.exceptions import NotFound
from werkzeug.wrappers.response import Response as WerkzeugResponse

PAGE = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page loads nothing but its own files and talks to this server alone.
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def _package_files() -> dict[str, tuple[bytes, str]]:
    """Each servable file of the package's `inspector/` folder: name -> (body, content type)."""
    found: dict[str, tuple[bytes, str]] = {}
    for entry in files("realtime_trio").joinpath("inspector").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            found[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return found


def inspector_blueprint() -> Blueprint:
    """The page (`/inspector`) and its files (`/inspector/<name>`), read once, kept out of the
    OpenAPI document."""
    served = _package_files()
    blueprint = Blueprint("inspector", __name__)

    def answer(name: str) -> Response:
        if name not in served:
            raise NotFound()
        body, content_type = served[name]
        return Response(body, content_type=content_type, headers=HEADERS)

    @blueprint.get("/inspector")
    @hide
    async def page() -> Response:
        return answer(PAGE)

    @blueprint.get("/inspector/")
    @hide
    async def page_slash() -> WerkzeugResponse:
        # The page's links are relative to `/inspector` (so it works under a path prefix).
        return redirect("../inspector")

    @blueprint.get("/inspector/<name>")
    @hide
    async def page_file(name: str) -> Response:
        if name == PAGE:  # only at /inspector, where its relative links resolve
            raise NotFound()
        return answer(name)

    return blueprint
