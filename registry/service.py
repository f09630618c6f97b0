"""The registry's service layer: register, deregister, rotate, verify, look up.

Each public method of :class:`RegistryService` authorises the caller, does its work in
one database transaction together with its event (:func:`common.events.record`: outbox
row and audit entry), and returns a result or raises a :class:`registry.errors.RegistryError`.

Failed authentications are the exception to "one transaction": the attempt fails, yet
its audit event must stay, so it is committed on its own before the error is raised.
The slow hash (scrypt) always runs outside any transaction, so it never holds a lock.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import Database
from common.db.models import ChargePoint, Credential, PrincipalKind, utcnow
from common.events import Event, EventType, record
from common.protocol.keys import ScryptParams, Verifier, check_secret, make_verifier, new_secret
from common.ratelimit import FailureLimiter, Key, Lockout
from registry.errors import Conflict, NotFound, RateLimited, Unauthorized
from registry.validation import check_secret_shape

__all__ = ["Caller", "ChargePointStatus", "Issued", "RegistryService"]

log = logging.getLogger(__name__)

SOURCE = "registry"
OPERATOR = "operator"
PROVISIONING = "provisioning"


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the HTTP layer saw it: address and bearer credential (if any)."""

    source_ip: str | None
    bearer: str | None = None

    @property
    def ip_key(self) -> Key:
        return ("ip", self.source_ip or "unknown")


@dataclass(frozen=True)
class ChargePointStatus:
    """What anyone may know about a charge point. Never a secret or a verifier."""

    id: str
    location: str
    price_eur_kwh: Decimal
    registered_at: datetime
    deregistered_at: datetime | None

    @classmethod
    def of(cls, cp: ChargePoint) -> ChargePointStatus:
        return cls(cp.id, cp.location, cp.price_eur_kwh, cp.registered_at, cp.deregistered_at)

    @property
    def status(self) -> str:
        return "registered" if self.deregistered_at is None else "deregistered"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "location": self.location,
            "price_eur_kwh": str(self.price_eur_kwh),
            "status": self.status,
            "registered_at": _iso(self.registered_at),
            "deregistered_at": _iso(self.deregistered_at) if self.deregistered_at else None,
        }


@dataclass(frozen=True)
class Issued:
    """A charge point and the secret just issued to it: shown once, then only its hash."""

    cp: ChargePointStatus
    secret: str
    reregistered: bool = False

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"Issued(cp={self.cp.id!r}, secret=<hidden>, reregistered={self.reregistered})"


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="seconds")


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings of any characters."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


class RegistryService:
    """Charge-point registration and credentials over a shared database.

    Args:
        db: the database shared with Central.
        provisioning_token: bearer token that may register charge points.
        operator_token: bearer token of the operator (register, list, deregister,
            rotate any charge point); None disables those operator powers.
        default_price: EUR/kWh for a charge point registered without a price.
        scrypt: cost of the slow hash for new secrets.
        limiter: counts failed authentications per charge-point id and per address.
        window: the limiter's window in seconds (reported in lock-out events).
    """

    def __init__(
        self,
        db: Database,
        *,
        provisioning_token: str,
        operator_token: str | None,
        default_price: Decimal,
        scrypt: ScryptParams,
        limiter: FailureLimiter,
        window: float,
    ) -> None:
        self._db = db
        self._provisioning_token = provisioning_token
        self._operator_token = operator_token
        self._default_price = default_price
        self._scrypt = scrypt
        self._limiter = limiter
        self._window = window

    # -- operations ---------------------------------------------------------------------

    def register(self, caller: Caller, cp_id: str, location: str, price: Decimal | None) -> Issued:
        """Create (or bring back) ``cp_id`` and issue its secret.

        Raises:
            Unauthorized, RateLimited: not the provisioning or operator token.
            Conflict: ``cp_id`` is registered already (``already_registered``).
        """
        actor = self._authorize_token(
            caller,
            "register",
            {PROVISIONING: self._provisioning_token, OPERATOR: self._operator_token},
            cp_id=cp_id,
        )
        price = self._default_price if price is None else price
        secret = new_secret()
        verifier = make_verifier(secret, self._scrypt)
        taken = Conflict(f"charge point {cp_id} is already registered", code="already_registered")
        try:
            with self._db.transaction() as s:
                cp = s.get(ChargePoint, cp_id, with_for_update=True)
                if cp is not None and cp.registered:
                    raise taken
                reregistered = cp is not None
                now = utcnow()
                if cp is None:
                    cp = ChargePoint(id=cp_id, location=location, price_eur_kwh=price)
                    s.add(cp)
                cp.location, cp.price_eur_kwh = location, price
                cp.registered_at, cp.deregistered_at = now, None
                _store_verifier(s, cp_id, verifier, now)
                record(
                    s,
                    Event(
                        EventType.CP_REGISTERED,
                        SOURCE,
                        {
                            "location": location,
                            "price_eur_kwh": str(price),
                            "reregistered": reregistered,
                        },
                        cp_id=cp_id,
                        actor=actor,
                        source_ip=caller.source_ip,
                    ),
                )
                s.flush()
                status = ChargePointStatus.of(cp)
        except IntegrityError:  # another request registered the same id a moment ago
            raise taken from None
        log.info(
            "charge point registered",
            extra={"fields": {"cp_id": cp_id, "actor": actor, "peer": caller.source_ip}},
        )
        return Issued(status, secret, reregistered)

    def deregister(self, caller: Caller, cp_id: str) -> ChargePointStatus:
        """Deregister ``cp_id``: its credential is deleted, so Central refuses it from now.

        Authorised by the charge point's own secret or by the operator token.

        Raises:
            Unauthorized, RateLimited: neither credential is right.
            NotFound: no such charge point. Conflict: it is deregistered already.
        """
        actor, expected = self._authorize_cp_or_operator(caller, cp_id, "deregister")
        with self._db.transaction() as s:
            cp = self._registered(s, cp_id)
            credential = s.get(Credential, (PrincipalKind.CP, cp_id), with_for_update=True)
            _still_current(credential, expected)
            cp.deregistered_at = utcnow()
            if credential is not None:
                s.delete(credential)
            _record_by(s, EventType.CP_DEREGISTERED, caller, cp_id, actor)
            s.flush()
            status = ChargePointStatus.of(cp)
        log.info(
            "charge point deregistered",
            extra={"fields": {"cp_id": cp_id, "actor": actor, "peer": caller.source_ip}},
        )
        return status

    def rotate(self, caller: Caller, cp_id: str) -> Issued:
        """Issue a new secret for ``cp_id``; the old one stops working at once.

        Raises:
            Unauthorized, RateLimited: neither the current secret nor the operator token.
            NotFound: no such charge point. Conflict: it is deregistered.
        """
        actor, expected = self._authorize_cp_or_operator(caller, cp_id, "rotate")
        secret = new_secret()
        verifier = make_verifier(secret, self._scrypt)
        with self._db.transaction() as s:
            cp = self._registered(s, cp_id)
            credential = s.get(Credential, (PrincipalKind.CP, cp_id), with_for_update=True)
            _still_current(credential, expected)
            _store_verifier(s, cp_id, verifier, utcnow())
            _record_by(s, EventType.CP_CREDENTIAL_ROTATED, caller, cp_id, actor)
            status = ChargePointStatus.of(cp)
        log.info(
            "charge point secret rotated",
            extra={"fields": {"cp_id": cp_id, "actor": actor, "peer": caller.source_ip}},
        )
        return Issued(status, secret)

    def verify(self, caller: Caller, cp_id: str, secret: str) -> ChargePointStatus:
        """Check a charge point's secret.

        Raises:
            Unauthorized: wrong secret, unknown or deregistered id (indistinguishable).
            RateLimited: too many failures for this id or from this address.
        """
        self._check_secret(caller, cp_id, secret, "verify")
        log.info("secret verified", extra={"fields": {"cp_id": cp_id, "peer": caller.source_ip}})
        return self.get(cp_id)

    def get(self, cp_id: str) -> ChargePointStatus:
        """Public status of ``cp_id``. Raises NotFound."""
        with self._db.transaction() as s:
            cp = s.get(ChargePoint, cp_id)
            if cp is None:
                raise NotFound(f"no charge point {cp_id}")
            return ChargePointStatus.of(cp)

    def ping(self) -> None:
        """Touch the database (for health checks); raises if it is unreachable."""
        with self._db.transaction() as s:
            s.execute(select(1))

    def list_all(self, caller: Caller) -> list[ChargePointStatus]:
        """Every charge point, registered or not, by id (operator only)."""
        self._authorize_token(caller, "list", {OPERATOR: self._operator_token})
        with self._db.transaction() as s:
            rows = s.scalars(select(ChargePoint).order_by(ChargePoint.id)).all()
            return [ChargePointStatus.of(cp) for cp in rows]

    # -- authorisation ----------------------------------------------------------------------

    def _authorize_token(
        self,
        caller: Caller,
        action: str,
        accepted: dict[str, str | None],
        cp_id: str | None = None,
    ) -> str:
        """Return the actor whose token the caller holds (failures count per address)."""
        bearer = _bearer(caller)
        attempt = self._limiter.begin([caller.ip_key])
        if not attempt.allowed:
            raise _limited(attempt.retry_after)
        for actor, token in accepted.items():
            if token is not None and _same(bearer, token):
                self._limiter.end(attempt, failed=False)
                return actor
        lockouts = self._limiter.end(attempt, failed=True)
        self._failed(caller, action, "invalid_token", cp_id, lockouts)
        raise Unauthorized("the bearer token is not valid here", code="invalid_token")

    def _authorize_cp_or_operator(
        self, caller: Caller, cp_id: str, action: str
    ) -> tuple[str, bytes | None]:
        """The operator, or the charge point itself (then also its current ``stored_key``)."""
        bearer = _bearer(caller)
        # The address's lock is checked before the operator token, or a locked-out client
        # could go on guessing it: the answer would tell a right guess from a wrong one.
        attempt = self._limiter.begin([caller.ip_key])
        if not attempt.allowed:
            raise _limited(attempt.retry_after)
        is_operator = self._operator_token is not None and _same(bearer, self._operator_token)
        self._limiter.end(attempt, failed=False)  # a failure is counted once, below
        if is_operator:
            return OPERATOR, None
        return f"cp:{cp_id}", self._check_secret(caller, cp_id, bearer, action)

    def _check_secret(self, caller: Caller, cp_id: str, secret: str, action: str) -> bytes:
        """Check ``secret`` for ``cp_id``; return its ``stored_key`` or raise."""
        attempt = self._limiter.begin([("id", cp_id), caller.ip_key])
        if not attempt.allowed:
            raise _limited(attempt.retry_after)
        try:
            reason, stored = self._secret_matches(cp_id, secret)
        except BaseException:
            self._limiter.end(attempt, failed=False)  # our fault (database), not theirs
            raise
        lockouts = self._limiter.end(attempt, failed=stored is None)
        if stored is None:
            self._failed(caller, action, reason, cp_id, lockouts)
            raise Unauthorized(f"wrong credentials for charge point {cp_id}")
        return stored

    def _secret_matches(self, cp_id: str, secret: str) -> tuple[str, bytes | None]:
        """(reason, stored_key): stored_key is None when the secret is not right."""
        shaped = check_secret_shape(secret)
        with self._db.transaction() as s:
            cp = s.get(ChargePoint, cp_id)
            credential = s.get(Credential, (PrincipalKind.CP, cp_id))
            verifier = _verifier(credential) if credential is not None else None
        if cp is None:
            return "unknown_id", None
        if not cp.registered or verifier is None:
            return "deregistered", None
        if shaped is None:
            return "malformed_secret", None
        if not check_secret(shaped, verifier):  # the slow hash, outside the transaction
            return "wrong_secret", None
        return "ok", verifier.stored_key

    def _failed(
        self,
        caller: Caller,
        action: str,
        reason: str,
        cp_id: str | None,
        lockouts: list[Lockout],
    ) -> None:
        """Audit a failed authentication (and any lock-out it caused) in its own transaction."""
        with self._db.transaction() as s:
            record(
                s,
                Event(
                    EventType.REGISTRY_VERIFY_FAILED,
                    SOURCE,
                    {"action": action, "reason": reason},
                    cp_id=cp_id,
                    actor="anonymous",
                    source_ip=caller.source_ip,
                ),
            )
            for lock in lockouts:
                record(
                    s,
                    Event(
                        EventType.REGISTRY_LOCKOUT,
                        SOURCE,
                        {
                            "scope": lock.scope,
                            "key": lock.value,
                            "failures": lock.failures,
                            "window_s": self._window,
                            "retry_after_s": lock.retry_after,
                        },
                        cp_id=lock.value if lock.scope == "id" else None,
                        actor="registry",
                        source_ip=caller.source_ip,
                    ),
                )
        fields = {"action": action, "reason": reason, "cp_id": cp_id, "peer": caller.source_ip}
        log.warning("authentication failed", extra={"fields": fields})
        for lock in lockouts:
            log.warning(
                "locked out after repeated failures",
                extra={
                    "fields": {"scope": lock.scope, "key": lock.value, "for_s": lock.retry_after}
                },
            )

    def _registered(self, s: Session, cp_id: str) -> ChargePoint:
        cp = s.get(ChargePoint, cp_id, with_for_update=True)
        if cp is None:
            raise NotFound(f"no charge point {cp_id}")
        if not cp.registered:
            raise Conflict(f"charge point {cp_id} is deregistered", code="not_registered")
        return cp


def _bearer(caller: Caller) -> str:
    if not caller.bearer:
        raise Unauthorized("send Authorization: Bearer <token>", code="missing_token")
    return caller.bearer


def _limited(retry_after: int) -> RateLimited:
    return RateLimited(
        f"too many failed attempts; retry in {retry_after} s", retry_after=retry_after
    )


def _verifier(credential: Credential) -> Verifier:
    params = ScryptParams(credential.scrypt_n, credential.scrypt_r, credential.scrypt_p)
    return Verifier(credential.salt, params, credential.stored_key, credential.server_key)


def _store_verifier(s: Session, cp_id: str, verifier: Verifier, now: datetime) -> None:
    credential = s.get(Credential, (PrincipalKind.CP, cp_id), with_for_update=True)
    if credential is None:
        credential = Credential(principal_kind=PrincipalKind.CP, principal_id=cp_id)
        s.add(credential)
    credential.set_verifier(verifier)
    credential.created_at = now


def _still_current(credential: Credential | None, expected: bytes | None) -> None:
    """The secret checked a moment ago must still be the one on file (no rotation since)."""
    if expected is None:  # the operator acts, whatever the secret
        return
    if credential is None or not hmac.compare_digest(credential.stored_key, expected):
        raise Unauthorized("the credential changed meanwhile", code="invalid_credentials")


def _record_by(s: Session, kind: EventType, caller: Caller, cp_id: str, actor: str) -> None:
    """Audit a change to ``cp_id`` made by the CP itself or by the operator."""
    by = "operator" if actor == OPERATOR else "self"
    record(s, Event(kind, SOURCE, {"by": by}, cp_id=cp_id, actor=actor, source_ip=caller.source_ip))
