"""A simulated OCPP 1.6J charger (``ev-ocpp-sim``), for the demo and the tests (docs/ocpp.md)."""
