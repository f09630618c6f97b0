"""The monitor's menu: keys on a terminal, or lines such as ``swallow 5`` on stdin."""

from __future__ import annotations

from common.chargepoint.menu import Menu, MenuItem

__all__ = ["MONITOR_MENU"]

MONITOR_MENU = Menu(
    [
        MenuItem("r", "register", "register this CP with the Registry (saves the secret)"),
        MenuItem("d", "deregister", "deregister this CP (deletes the secret)"),
        MenuItem("a", "authenticate", "authenticate with Central", ("auth", "login")),
        MenuItem("e", "reauthenticate", "re-authenticate (after a key revocation)", ("reauth",)),
        MenuItem("s", "status", "show the CP's status"),
        MenuItem("k", "ko", "fault injection: mark the engine KO", ("fault",)),
        MenuItem("o", "ok", "fault injection: the engine recovered", ("recover",)),
        MenuItem(
            "h", "swallow", "fault injection: ignore health answers", ("mute",), "seconds", 5.0
        ),
        MenuItem(
            "l", "lose", "fault injection: lose the link to Central", ("cut",), "seconds", 10.0
        ),
        MenuItem("?", "help", "show this menu"),
        MenuItem("q", "quit", "stop the monitor", ("exit",)),
    ]
)
