"""Charge-point monitor: health checks, registration, authentication (``ev-cp-monitor``).

Pure logic: :mod:`health` (engine health as a table), :mod:`menu`, :mod:`settings`,
:mod:`secret_file`. Edges: :mod:`registry_client` (HTTPS), :mod:`engine_link`,
:mod:`central_link`, :mod:`app`, :mod:`__main__`.
"""
