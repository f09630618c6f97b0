"""Benchmarks and load checks (``make bench``); not part of ``make test``."""
