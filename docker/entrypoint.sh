#!/bin/sh
# The image's entry point. `serve` (the default): migrate, then the API (and, unless WORKERS_ENABLED=false,
# the workers) under uvicorn on $PORT. `worker`: migrate, then only the workers. `migrate`: only the
# migrations. Anything else is run as given (`docker run IMAGE llm-batch list`).
set -eu

case "${1:-serve}" in
    serve)
        python -m service migrate
        exec python -m uvicorn --factory service.app:serve_app --host 0.0.0.0 --port "${PORT:-8000}" --timeout-graceful-shutdown 30
        ;;
    worker)
        python -m service migrate
        exec python -m service worker
        ;;
    migrate)
        exec python -m service migrate
        ;;
    *)
        exec "$@"
        ;;
esac
