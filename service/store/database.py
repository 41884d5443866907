"""Engines, sessions and migrations for SQLite (the embedded default) and PostgreSQL.

The API and the workers get separate connection pools (`Database.api` and `Database.workers`): however many
requests are waiting on the database, a worker step never waits for one of their connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from service.store import sqlite_driver
from service.store.dialect import (
    SQLITE_CONNECT_ARGS,
    SQLITE_WORKER_CACHE_KIB,
    configure_sqlite_engine,
    is_sqlite_url,
    serialise_migrations,
)

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"

Sessions = async_sessionmaker[AsyncSession]

# Connections per pool. The API's pool serves requests; the workers' pool serves worker steps.
API_POOL_SIZE, API_POOL_OVERFLOW = 8, 8
WORKER_POOL_SIZE, WORKER_POOL_OVERFLOW = 4, 4
# How long a request waits for a connection before it is answered 503 (a worker step waits longer).
API_POOL_TIMEOUT_SECONDS = 10.0
WORKER_POOL_TIMEOUT_SECONDS = 60.0


def async_url(database_url: str) -> URL:
    """Accept the plain URLs users write (sqlite:///, postgresql://) and pick our async drivers."""
    url = make_url(database_url)
    if url.drivername in ("sqlite", "sqlite+aiosqlite"):
        return url.set(drivername="sqlite+aiosqlite")
    if url.drivername in ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"):
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported DATABASE_URL driver {url.drivername!r}: use sqlite:/// or postgresql://")


def display_url(database_url: str) -> str:
    """The URL with its password hidden, for logs and the demo's banner."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: the engine will say so; show it as given
        return database_url


def create_engine(
    database_url: str,
    *,
    pool_size: int = API_POOL_SIZE,
    max_overflow: int = API_POOL_OVERFLOW,
    pool_timeout: float = API_POOL_TIMEOUT_SECONDS,
    sqlite_cache_kib: int | None = None,
) -> AsyncEngine:
    """`sqlite_cache_kib`: the page cache of each SQLite connection (None: SQLite's 2 MB)."""
    url = async_url(database_url)
    if is_sqlite_url(url):
        engine = create_async_engine(
            url,
            async_creator=sqlite_driver.connector(url, **SQLITE_CONNECT_ARGS),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            # The connection used last goes out first: one warm page cache, not a cold one per pooled connection.
            pool_use_lifo=True,
        )
        configure_sqlite_engine(engine, url, cache_kib=sqlite_cache_kib)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout, pool_pre_ping=True
    )


def session_factory(engine: AsyncEngine) -> Sessions:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@dataclass
class Database:
    """Both pools of one database. `api` serves HTTP requests, `workers` serves worker steps."""

    api_engine: AsyncEngine
    worker_engine: AsyncEngine

    @classmethod
    def connect(cls, database_url: str) -> Database:
        return cls(
            api_engine=create_engine(database_url),
            worker_engine=create_engine(
                database_url,
                pool_size=WORKER_POOL_SIZE,
                max_overflow=WORKER_POOL_OVERFLOW,
                pool_timeout=WORKER_POOL_TIMEOUT_SECONDS,
                sqlite_cache_kib=SQLITE_WORKER_CACHE_KIB,
            ),
        )

    @property
    def api(self) -> Sessions:
        return session_factory(self.api_engine)

    @property
    def workers(self) -> Sessions:
        return session_factory(self.worker_engine)

    async def migrate(self) -> None:
        await migrate(self.worker_engine)

    async def dispose(self) -> None:
        await self.api_engine.dispose()
        await self.worker_engine.dispose()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration. Safe to run from several processes at once."""
    async with engine.begin() as connection:
        await serialise_migrations(connection)
        await connection.run_sync(_upgrade)
