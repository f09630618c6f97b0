"""The transactions OCPP chargers started, and the Central sessions they are.

Kept by the OCPP server for every charger, in memory: they outlive a reconnection
(a charger sends StopTransaction for a transaction of its previous connection), not a
restart of Central (docs/ocpp.md, "Not done").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["MAX_OPEN_TRANSACTIONS", "MAX_TARGETS", "Transaction", "Transactions"]

MAX_OPEN_TRANSACTIONS = 8  # per charger: one live, the rest lost to dropped connections
MAX_TARGETS = 1024  # targets of authorisations not yet started, all chargers


@dataclass
class Transaction:
    """A transaction the charger started, and the Central session it is."""

    session_id: str
    meter_start_wh: Decimal
    target_kwh: Decimal | None = None
    stop_asked: str | None = None  # why Central asked the charger to stop it


@dataclass
class Transactions:
    """Every charger's open transactions, by CP: they outlive a reconnection."""

    by_cp: dict[str, dict[int, Transaction]] = field(default_factory=dict)
    targets: dict[str, Decimal | None] = field(default_factory=dict)  # session -> target

    def expect(self, session_id: str, target_kwh: Decimal | None) -> None:
        """An authorisation was sent: its target applies to the transaction that starts it."""
        self.targets[session_id] = target_kwh
        while len(self.targets) > MAX_TARGETS:  # authorisations withdrawn before a start
            del self.targets[next(iter(self.targets))]

    def of(self, cp_id: str) -> dict[int, Transaction]:
        return self.by_cp.setdefault(cp_id, {})

    def add(self, cp_id: str, tx_id: int, tx: Transaction) -> None:
        txs = self.of(cp_id)
        txs[tx_id] = tx
        while len(txs) > MAX_OPEN_TRANSACTIONS:  # stopped without a StopTransaction
            del txs[next(iter(txs))]

    def find(self, cp_id: str, session_id: str) -> tuple[int, Transaction] | None:
        for tx_id, tx in self.of(cp_id).items():
            if tx.session_id == session_id:
                return tx_id, tx
        return None
