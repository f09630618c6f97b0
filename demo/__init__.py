"""``evcharging demo``: the whole system on one machine, supervised.

Modules: ``settings`` (flags, ports, tokens), ``plan`` (CPs, cities, drivers: pure),
``supervisor`` (child processes, restarts, ordered stop), ``launch`` (each
child's command line), ``central_api`` (the few
API_Central calls), ``screen`` (plain lines or a rich live board), ``runner`` (start-up,
the loop, shutdown, summary).

EVChargingError
 ├── StartupFailed   broker, registry or central did not come up (exit 1)
 └── ApiUnavailable  API_Central did not answer (shown, never fatal)
"""

from demo.runner import Demo, StartupFailed, install_signal_handlers
from demo.settings import DemoSettings, add_demo_options, resolve_settings

__all__ = [
    "Demo",
    "DemoSettings",
    "StartupFailed",
    "add_demo_options",
    "install_signal_handlers",
    "resolve_settings",
]
