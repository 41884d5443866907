"""The data-access layer: every SQL statement of the service, a module per aggregate.

Callers get plain values or table rows back and pass plain values in; nothing outside this package (and
`service/models.py`, the tables) builds a query. Dialect differences live in `dialect.py` alone.
"""

from sqlalchemy.exc import TimeoutError as PoolTimeout

from service.store.database import Database, Sessions
from service.store.dialect import write_transaction
from service.store.unit import Session, rows_affected, transaction

# Raised when every connection of a pool stayed taken for its timeout: the API answers 503 for them.
POOL_TIMEOUT_ERRORS: tuple[type[Exception], ...] = (PoolTimeout,)

__all__ = [
    "POOL_TIMEOUT_ERRORS",
    "Database",
    "Session",
    "Sessions",
    "rows_affected",
    "transaction",
    "write_transaction",
]
