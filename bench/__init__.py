"""Benchmarks and load checks (``make bench``); not part of ``make test``."""

import os

# The benchmarks provision credentials at scrypt n=1024 or n=16, below the floor clients
# hold Central to (n=2**14): their clients, here and in child processes, accept them.
os.environ.setdefault("EV_SCRYPT_MIN_N", "16")
