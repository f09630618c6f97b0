"""Driver accounts: an id and a verifier in the shared database (no personal data)."""

from __future__ import annotations

from typing import Any

from central.api.queries import drivers as query_drivers
from common.db import open_database
from common.db.auditkeys import AuditKeys
from common.db.models import Credential, Driver, PrincipalKind
from common.errors import ConfigError
from common.events import Event, EventType, record
from common.protocol.handshake import valid_principal_id
from common.protocol.keys import ScryptParams, make_verifier, new_secret

__all__ = ["add_driver", "list_drivers"]


def add_driver(url: str, driver_id: str, params: ScryptParams, audit_keys: AuditKeys) -> str:
    """Create a driver account; returns its secret (never stored).

    Raises:
        ConfigError: the id is malformed or already taken.
    """
    if not valid_principal_id(driver_id):
        raise ConfigError("ID", "driver ids are 1-32 letters, digits, '-' or '_'")
    secret = new_secret()
    verifier = make_verifier(secret, params)
    db = open_database(url, audit_keys=audit_keys)
    try:
        with db.transaction() as session:
            if session.get(Driver, driver_id) is not None:
                raise ConfigError("ID", f"driver {driver_id} already exists")
            session.add(Driver(id=driver_id))
            session.add(Credential.of(PrincipalKind.DRIVER, driver_id, verifier))
            record(
                session,
                Event(
                    EventType.DRIVER_CREATED, "central", {}, driver_id=driver_id, actor="operator"
                ),
            )
    finally:
        db.dispose()
    return secret


def list_drivers(url: str) -> list[dict[str, Any]]:
    db = open_database(url)
    try:
        with db.transaction() as session:
            return query_drivers(session)
    finally:
        db.dispose()
