"""Shared foundation of EVCharging: what every service uses, and nothing about any one service.

The protocol, crypto, database, events, infrastructure, configuration, and the pieces the
charge-point programs share (``common.chargepoint``). It imports no service, no ``demo`` and
no ``bench`` (docs/architecture.md; tests/unit/test_architecture.py).
"""
