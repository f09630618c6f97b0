"""Throwaway databases for tests and benchmarks: a new database on a PostgreSQL server.

with scratch_postgres("postgresql+psycopg2://postgres@127.0.0.1:5432/test") as url:
    ...  # an empty database, dropped (connections and all) at the end
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

__all__ = ["scratch_postgres"]


@contextmanager
def scratch_postgres(admin_url: str, prefix: str = "ev_scratch") -> Iterator[str]:
    """Create an empty database on ``admin_url``'s server; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
