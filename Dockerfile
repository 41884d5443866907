# syntax=docker/dockerfile:1
# llm-batch: the API and its workers. See README.md, "Docker".
#   docker build -t llm-batch .
#   docker run --rm -p 8000:8000 -v llm-batch-data:/app/data llm-batch

# -- build: a virtual environment holding exactly the dependencies pinned in pyproject.toml ----------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY pyproject.toml docker/pinned_requirements.py ./
COPY client ./client
RUN python -m venv /opt/venv \
    && python pinned_requirements.py pyproject.toml > requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --requirement requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps ./client

# -- runtime: the environment and the source, run by an unprivileged user ----------------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8000 \
    DATABASE_URL=sqlite:////app/data/llm_batch.db \
    SPOOL_DIR=/app/data/spool \
    LOG_FORMAT=json
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin llmbatch
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini pyproject.toml ./
COPY alembic ./alembic
COPY service ./service
COPY groq_emulator ./groq_emulator
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/llm-batch-entrypoint
RUN mkdir -p /app/data && chown llmbatch:llmbatch /app/data
USER 10001:10001
VOLUME ["/app/data"]
EXPOSE 8000
# The slim image has no curl: the probe is Python's urllib (a non-2xx answer or no answer exits non-zero).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
ENTRYPOINT ["llm-batch-entrypoint"]
CMD ["serve"]
