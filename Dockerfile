# realtime-trio: docker build -t ai-realtime-server . && docker run --rm -p 3001:3001 --env-file .env ai-realtime-server
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The valkey extra (valkey-glide, anyio[trio]) lets the image run against a shared store
# (STORE_URL=valkey://...); with the default memory:// none of it is imported. The mcp extra
# (the MCP SDK) serves MCP_SERVERS_FILE; without the file it is not imported either.
RUN pip install --no-cache-dir --prefix=/install '.[valkey,mcp]'

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=3001
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
COPY --from=build /install /usr/local
USER app
WORKDIR /home/app
EXPOSE 3001
# Liveness only (/healthz never calls the store): a store outage must not mark replicas
# unhealthy while their live calls carry on. Load balancers ask /readyz instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3001'), timeout=3)"]
# SIGTERM (docker stop) makes the server stop accepting, finish in-flight requests and exit 0.
STOPSIGNAL SIGTERM
CMD ["realtime-trio", "serve"]
