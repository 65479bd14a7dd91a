"""`GET /metrics`: the Prometheus text format, for a scraper (with `SERVER_API_KEYS` set it
needs a key, as a bearer token, like every other endpoint)."""

from __future__ import annotations

from collections.abc import Callable

from quart import Blueprint, Response

from .._metrics import Metrics


def metrics_blueprint(metrics: Metrics, *, before: Callable[[], None]) -> Blueprint:
    """The route; *before* runs before each scrape (the sessions count the usage they noted)."""
    blueprint = Blueprint("metrics", __name__)

    @blueprint.get("/metrics")
    async def scrape() -> Response:
        before()
        return Response(metrics.exposition(), content_type=metrics.content_type)

    return blueprint
