"""Charge points and drivers put straight in the database, each with a fresh secret.

What the Registry's ``register`` does (a ``ChargePoint`` row and a ``Credential`` holding
the secret's verifier), without its HTTP, its tokens or its audit entries: for tests and
benchmarks that need one CP, or ten thousand, at once, in one transaction.

    made = provision(url, numbered("CP", 1000), params=ScryptParams(n=1024))
    made.cps["CP00042"]  # that CP's secret
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from common.db.engine import open_database
from common.db.models import ChargePoint, Credential, Driver, PrincipalKind
from common.protocol.keys import ScryptParams, make_verifier, new_secret

__all__ = ["PLACES", "Provisioned", "numbered", "provision"]

PLACES = tuple(f"City{n}" for n in range(10))  # where CPs are when nobody says


@dataclass(frozen=True)
class Provisioned:
    """Every principal made, in the order asked for: ``{id: secret}``."""

    cps: dict[str, str]
    drivers: dict[str, str]


def numbered(prefix: str, count: int) -> list[str]:
    """``count`` ids ``<prefix>00000``, ``<prefix>00001``..."""
    return [f"{prefix}{i:05d}" for i in range(count)]


def provision(
    url: str,
    cps: Sequence[str],
    *,
    params: ScryptParams,
    locations: Sequence[str] = PLACES,
    price: Decimal = Decimal("0.30"),
    drivers: Sequence[str] = (),
) -> Provisioned:
    """Register the CPs ``cps`` and the drivers ``drivers`` in one transaction.

    Args:
        url: the database (migrated to head first, as every service does).
        cps: the charge points' ids; CP number ``i`` is in ``locations[i % len(locations)]``
            and charges ``price`` EUR/kWh.
        params: the scrypt cost of the verifiers (the clients must accept it: tests and
            benchmarks lower their floor with ``EV_SCRYPT_MIN_N``).
        drivers: the drivers' ids.

    Returns:
        The secret of each CP and each driver.
    """
    made = Provisioned({}, {})
    db = open_database(url)
    try:
        with db.transaction() as session:
            for i, cp_id in enumerate(cps):
                where = locations[i % len(locations)]
                session.add(ChargePoint(id=cp_id, location=where, price_eur_kwh=price))
                made.cps[cp_id] = _credential(session, PrincipalKind.CP, cp_id, params)
            for driver_id in drivers:
                session.add(Driver(id=driver_id))
                made.drivers[driver_id] = _credential(
                    session, PrincipalKind.DRIVER, driver_id, params
                )
    finally:
        db.dispose()
    return made


def _credential(session: Session, kind: str, principal_id: str, params: ScryptParams) -> str:
    """Add a fresh secret's verifier for the principal; return the secret."""
    secret = new_secret()
    session.add(Credential.of(kind, principal_id, make_verifier(secret, params)))
    return secret
