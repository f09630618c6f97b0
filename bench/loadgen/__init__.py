"""The load generator: N charge points and D drivers, really authenticated, against Central.

``python -m bench.loadgen`` runs it on its own (``__main__``); ``bench.scale``,
``bench.throughput`` and ``bench.cluster`` drive it. One job a module:

- ``metrics``: latency histograms, a worker's counters, a merged window's summary;
- ``link``: one client connection as an ``asyncio.Protocol`` on the sans-IO protocol;
- ``mix``: what a run is told: the target, the load mix (and its flags), a worker's share;
- ``worker``: one process's share of the fleet: connecting, the traffic, its windows;
- ``coordinator``: the worker processes, each step run in all of them at once;
- ``run``: one whole run against a fresh Central (provision, start, connect, measure).
"""
