"""Database: models, migrations, the audit chain. Start with ``open_database``."""

from common.db.engine import Database, TurnLock, database_url, open_database

__all__ = ["Database", "TurnLock", "database_url", "open_database"]
