"""Charge-point engine: the charger itself (``ev-cp-engine``).

Pure logic (no sockets, no asyncio): :mod:`meter`, :mod:`supply` (the supply state
table), :mod:`journal` (crash-safe metering), :mod:`charger` (the domain core),
:mod:`menu`, :mod:`settings`. Edges: :mod:`local_link` (the monitor's
link), :mod:`central_link`, :mod:`app`, :mod:`__main__`. What it shares with
``cp_monitor`` (pairing key, terminal, menu parser, options, errors) is in
``common.chargepoint``.
"""
