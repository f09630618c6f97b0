"""OCPP 1.6J chargers on Central: a WebSocket edge onto the same domain (docs/ocpp.md).

mapping.py   pure: statuses, meter values, stop reasons, CallError codes, Basic auth
charger.py   one connection: OCPP calls in and out, as a CP's monitor and engine Link
server.py    the WebSocket listener: path, subprotocol, authentication at the upgrade
"""

from central.ocpp.server import OcppServer, tls_context

__all__ = ["OcppServer", "tls_context"]
