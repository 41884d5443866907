# llm-batch: the API and its workers. See README.md, "Docker"; docker/smoke.sh builds and runs this file in CI.
#   docker build -t llm-batch .
#   docker run -d --name llm-batch -p 8000:8000 -v llm-batch-data:/app/data --stop-timeout 35 llm-batch
# Plain Dockerfile syntax (no `# syntax=` line, no BuildKit-only flags): builders without access to Docker
# Hub's frontend image, the legacy builder and buildah/podman all read it as it is.

# The base: python 3.11.16, slim, Debian 12 (bookworm), pinned by the digest of its multi-arch index on Docker
# Hub; both stages use it. A build that cannot pull it passes another base with the same Python and Debian:
# docker/smoke.sh imports a stand-in made by debootstrap as localhost/llm-batch-smoke/python:3.11-slim-bookworm
# and builds this file unchanged with --build-arg PYTHON_IMAGE=<that name>, its only build argument.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# -- build: a virtual environment holding exactly the dependencies pinned in pyproject.toml ----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY pyproject.toml docker/pinned_requirements.py ./
COPY client ./client
# pip and setuptools come with the venv (ensurepip) and only install: the runtime has no use for them.
RUN python -m venv /opt/venv \
    && python pinned_requirements.py pyproject.toml > requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --requirement requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps ./client \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools

# -- runtime: the environment and the source, run by an unprivileged user ----------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8000 \
    DATABASE_URL=sqlite:////app/data/llm_batch.db \
    SPOOL_DIR=/app/data/spool \
    LOG_FORMAT=json
# User and group 10001, both named llmbatch: the group first, so that it has the user's number.
RUN groupadd --gid 10001 llmbatch \
    && useradd --uid 10001 --gid 10001 --no-log-init --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin llmbatch
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini pyproject.toml ./
COPY alembic ./alembic
# One line per top-level package the service imports (and one `!name/` line in .dockerignore).
COPY service ./service
COPY groq_emulator ./groq_emulator
COPY openai_emulator ./openai_emulator
COPY anthropic_emulator ./anthropic_emulator
# Executable as git stores it (mode 100755): no --chmod, which only BuildKit knows.
COPY docker/entrypoint.sh /usr/local/bin/llm-batch-entrypoint
RUN mkdir -p /app/data && chown 10001:10001 /app/data
USER 10001:10001
VOLUME ["/app/data"]
EXPOSE 8000
# The slim image has no curl: the probe is Python's urllib (a non-2xx answer or no answer exits non-zero).
# podman and buildah keep it only in the Docker image format (`podman build --format docker`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
ENTRYPOINT ["llm-batch-entrypoint"]
CMD ["serve"]
