"""Charge-point engine: the charger itself."""
