"""The suite's one cheap scrypt cost, and the settings that carry it to processes.

Production hashes secrets at n=2**14, and clients refuse a CHALLENGE cheaper than that.
The suite hashes every test credential at ``CHEAP_SCRYPT`` to stay fast:

- ``CHEAP_SCRYPT_ENV`` is what a Registry or Central process the suite starts is given,
  so the secrets it hashes cost the same;
- ``CHEAP_SCRYPT_FLOOR`` is the documented test-only client setting (``EV_SCRYPT_MIN_N``)
  that tests/conftest.py puts in the test process's environment, which every child
  inherits, so the suite's clients accept that cost. It is each client's own
  environment: a peer cannot set it. test_scrypt_floor.py runs clients without it.
"""

from __future__ import annotations

from common.protocol.keys import ScryptParams

__all__ = ["CHEAP_SCRYPT", "CHEAP_SCRYPT_ENV", "CHEAP_SCRYPT_FLOOR"]

CHEAP_SCRYPT = ScryptParams(n=2**10, r=8, p=1)
CHEAP_SCRYPT_ENV = {"EV_SCRYPT_N": str(CHEAP_SCRYPT.n)}
CHEAP_SCRYPT_FLOOR = ("EV_SCRYPT_MIN_N", str(CHEAP_SCRYPT.n))
