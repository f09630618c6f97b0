"""Charge-point monitor: health checks, registration, authentication."""
