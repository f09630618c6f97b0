"""What the charge-point programs share: ``cp_engine``, ``cp_monitor`` and ``ocpp_sim``.

A charge point is two processes (engine and monitor) and the OCPP simulator registers
itself like a monitor; none of them imports another, they all import from here:

- :mod:`errors`: the charge-point error tree;
- :mod:`options`: the command-line options they have in common (``--id``, ``--central``,
  the Registry's) and where a CP keeps its files;
- :mod:`pairing`: the site pairing key of an engine and its monitor;
- :mod:`terminal` and :mod:`menu`: what a CP shows, and the keys and lines it reads;
- :mod:`startup`: the start of an engine or monitor process, settings to event loop,
  and its console (commands from stdin, stop on SIGTERM or SIGINT);
- :mod:`central_link`: what the engine's and the monitor's links to Central share;
- :mod:`secret_file` and :mod:`registry_client`: the CP's secret, and registering it.
"""
