"""SQLAlchemy 2.0 models: the schema every service shares.

Money and energy are ``Decimal`` in Python (:class:`DecimalType`) and times are
timezone-aware UTC (:class:`UTCDateTime`), on SQLite and PostgreSQL alike.
Schema changes go through Alembic migrations in ``common/db/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.protocol.keys import ScryptParams, Verifier

__all__ = [
    "AuditCheckpoint",
    "AuditEntry",
    "AuditHead",
    "Base",
    "CentralNode",
    "ChargePoint",
    "ChargePointOwner",
    "ChargingSession",
    "Credential",
    "DecimalType",
    "Driver",
    "OutboxRow",
    "PrincipalKind",
    "SessionStatus",
    "UTCDateTime",
    "WeatherAlert",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; naive UTC on SQLite, timestamptz on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecimalType(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC on PostgreSQL, text on SQLite (which has no decimal type)."""

    impl = Numeric(14, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(14, 4))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


_AUTO_ID = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PrincipalKind:
    CP = "cp"
    DRIVER = "driver"


class SessionStatus:
    AUTHORIZED = "authorized"  # Central authorised it; the vehicle is not plugged yet
    SUPPLYING = "supplying"
    ENDED = "ended"  # settled: the ticket exists
    CANCELLED = "cancelled"  # authorised but never plugged


class ChargePoint(Base):
    """A charge point known to the network. Deregistered CPs keep their row and history."""

    __tablename__ = "charge_points"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    location: Mapped[str] = mapped_column(String(64))
    price_eur_kwh: Mapped[Decimal] = mapped_column(DecimalType())
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deregistered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Last state Central reported; Central still starts every CP as DISCONNECTED.
    last_state: Mapped[str] = mapped_column(String(16), default="DISCONNECTED")
    # An operator's stop outlives a Central restart.
    operator_stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def registered(self) -> bool:
        return self.deregistered_at is None


class Credential(Base):
    """A principal's verifier: never the secret, only what the slow hash derives.

    ``stored_key``/``server_key`` follow SCRAM (RFC 5802) over scrypt: the server can
    check a challenge-response proof and prove itself, but cannot impersonate the
    principal from these columns.
    """

    __tablename__ = "credentials"

    principal_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    scrypt_n: Mapped[int] = mapped_column(Integer)
    scrypt_r: Mapped[int] = mapped_column(Integer)
    scrypt_p: Mapped[int] = mapped_column(Integer)
    stored_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    server_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @classmethod
    def of(cls, kind: str, principal_id: str, verifier: Verifier) -> Credential:
        """A new row holding ``verifier`` for the principal."""
        credential = cls(principal_kind=kind, principal_id=principal_id)
        credential.set_verifier(verifier)
        return credential

    def set_verifier(self, verifier: Verifier) -> None:
        """Store a secret's verifier (never an engine's session-key verifier)."""
        if verifier.params is None:
            raise ValueError("a stored verifier needs scrypt parameters")
        self.salt = verifier.salt
        self.scrypt_n, self.scrypt_r, self.scrypt_p = (
            verifier.params.n,
            verifier.params.r,
            verifier.params.p,
        )
        self.stored_key = verifier.stored_key
        self.server_key = verifier.server_key

    def verifier(self) -> Verifier:
        return Verifier(
            salt=self.salt,
            params=ScryptParams(self.scrypt_n, self.scrypt_r, self.scrypt_p),
            stored_key=self.stored_key,
            server_key=self.server_key,
        )


class Driver(Base):
    """A driver account: an id and (in ``credentials``) a verifier. No personal data."""

    __tablename__ = "drivers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ChargingSession(Base):
    """One charge, from authorisation to ticket. A row reaches ENDED exactly once."""

    __tablename__ = "charging_sessions"
    __table_args__ = (
        Index("ix_charging_sessions_cp_status", "cp_id", "status"),
        Index("ix_charging_sessions_driver", "driver_id", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cp_id: Mapped[str] = mapped_column(ForeignKey("charge_points.id"))
    driver_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.AUTHORIZED)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    target_kwh: Mapped[Decimal | None] = mapped_column(DecimalType())
    energy_kwh: Mapped[Decimal] = mapped_column(DecimalType(), default=Decimal(0))
    price_eur_kwh: Mapped[Decimal] = mapped_column(DecimalType())
    total_eur: Mapped[Decimal] = mapped_column(DecimalType(), default=Decimal(0))
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # Set when the driver has received the ticket; a driver who was away sees it later.
    ticket_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """Append-only, hash-chained record of a security- or state-relevant action.

    ``hash = HMAC-SHA256(key[key_id], prev_hash || canonical JSON of the other columns)``
    (``common.db.audit`` appends, ``common.db.chain`` verifies). ``key_id`` is NULL only
    in entries written before migration 0002, which no longer verify.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_ts", "ts"),)

    id: Mapped[int] = mapped_column(_AUTO_ID, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    source_ip: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(64), index=True)
    cp_id: Mapped[str | None] = mapped_column(String(32), index=True)
    params: Mapped[str] = mapped_column(Text, default="{}")
    event_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(16))


class AuditHead(Base):
    """One row (id = 1) locked by every appender, so concurrent writers chain in order."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(_AUTO_ID, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement "the chain's head was entry ``entry_id`` with ``hash``".

    Central writes one when the head has moved and publishes it to Kafka; a database
    whose chain no longer reaches a published checkpoint has lost entries.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(_AUTO_ID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(_AUTO_ID, index=True)
    hash: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(64))


class WeatherAlert(Base):
    """An active cold alert for a location (the row exists while the alert stands)."""

    __tablename__ = "weather_alerts"

    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    temperature_c: Mapped[float | None] = mapped_column()
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    raised_by: Mapped[str] = mapped_column(String(64))


class CentralNode(Base):
    """A running Central process and its lease: alive while ``heartbeat_at`` is recent.

    ``id`` is the address CPs reach it at (HOST:PORT), so a process restarted at the same
    address is the same node (docs/central.md, "Several Centrals").
    """

    __tablename__ = "central_nodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChargePointOwner(Base):
    """Which Central process a CP's monitor and engine are connected to (one row per CP).

    A row whose node's lease expired is free to be taken by the next process the CP's
    monitor reaches.
    """

    __tablename__ = "cp_owners"
    __table_args__ = (Index("ix_cp_owners_node", "node_id"),)

    cp_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    engine_up: Mapped[bool] = mapped_column(Boolean, default=False)


class OutboxRow(Base):
    """An event written in the same transaction as the change it describes.

    The relay publishes rows with ``sent_at IS NULL`` in ``id`` order and then sets it.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unsent", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(_AUTO_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    topic: Mapped[str] = mapped_column(String(128))
    key: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
