"""Fresh databases for tests: a SQLite file, or a new database on the PostgreSQL server.

PostgreSQL comes from ``EV_TEST_POSTGRES_URL`` (default: the CI server at
127.0.0.1:5432, user postgres, database test), else from testcontainers when a
Docker engine exists; otherwise PostgreSQL tests are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from common.db.scratch import scratch_postgres

DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _reachable(url: str) -> str | None:
    """None if the server answers, else the reason it does not."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    finally:
        engine.dispose()


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin URL of a PostgreSQL server; raise LookupError with a reason if none."""
    url = os.environ.get("EV_TEST_POSTGRES_URL", DEFAULT_PG)
    reason = _reachable(url)
    if reason is None:
        yield url
        return
    try:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver="psycopg2")
        container.start()
    except Exception as exc:  # no Docker engine: the reason is printed as the skip reason
        raise LookupError(
            f"no PostgreSQL at {make_url(url).render_as_string(hide_password=True)} "
            f"({reason}) and no Docker engine for testcontainers ({type(exc).__name__})"
        ) from None
    try:
        yield container.get_connection_url()
    finally:
        container.stop()


def fresh_postgres_database(admin_url: str) -> AbstractContextManager[str]:
    """Create an empty database for one test and drop it afterwards."""
    return scratch_postgres(admin_url, prefix="ev_test")
