# Build stage: install the service, its dependencies and the compiled packed-account
# codec (native/, Rust: the toolchain stays in this stage) into a virtual environment.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/root/.cargo/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends curl gcc libc6-dev \
 && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY native ./native
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install . ./native

# Final stage: the virtual environment only; no compilers, no pip cache, no sources.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && mkdir -p /var/lib/engagement/snapshots \
 && chown -R app:app /var/lib/engagement
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENGAGEMENT_SNAPSHOT_DIR=/var/lib/engagement/snapshots \
    ENGAGEMENT_HTTP_HOST=0.0.0.0 \
    ENGAGEMENT_HTTP_PORT=8080 \
    ENGAGEMENT_LOG_FORMAT=json
USER 10001:10001
VOLUME ["/var/lib/engagement"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# Exec form: the Python process is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["engagement-scoring"]
