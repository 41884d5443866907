"""The operator's commands, `python -m service migrate | openapi | worker` (the client's is `llm-batch`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvloop
import yaml

from service.app import build_providers, create_app
from service.observability.logging import configure_from_settings
from service.settings import get_settings
from service.store import Database
from service.workers.runner import run_worker_process

logger = logging.getLogger("service")


async def _migrate() -> None:
    database = Database.connect(get_settings().database_url)
    try:
        await database.migrate()
    finally:
        await database.dispose()


def _migrate_logged() -> None:
    """Migrate with the service's logging (JSON under LOG_FORMAT=json, like the server the image starts next)."""
    configure_from_settings(get_settings())
    asyncio.run(_migrate())
    logger.info("database is at the newest migration")


def openapi_yaml() -> str:
    document = create_app().openapi()
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _worker() -> int:
    settings = get_settings()
    configure_from_settings(settings)
    providers, label = build_providers(settings)
    return uvloop.run(run_worker_process(settings, providers, label))  # the loop uvicorn serves the API on


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description="Operator commands of llm-batch.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations to DATABASE_URL")
    sub.add_parser("openapi", help="print the OpenAPI document as YAML")
    sub.add_parser("worker", help="run only the workers (any number of them, beside API-only replicas)")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        _migrate_logged()
    elif args.command == "openapi":
        sys.stdout.write(openapi_yaml())
    elif args.command == "worker":
        sys.exit(_worker())
