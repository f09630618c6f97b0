"""Charge-point monitor: health checks, registration, authentication (``ev-cp-monitor``).

Pure logic: :mod:`health` (engine health as a table), :mod:`menu`, :mod:`settings`.
Edges: :mod:`engine_link`, :mod:`central_link`, :mod:`app`, :mod:`__main__`. What it
shares with ``cp_engine`` and ``ocpp_sim`` (secret file, Registry client, pairing key,
terminal, options, errors) is in ``common.chargepoint``.
"""
