"""The engine's menu: keys on a terminal, or lines such as ``request 10`` on stdin."""

from __future__ import annotations

from common.chargepoint.menu import Menu, MenuItem

__all__ = ["ENGINE_MENU"]


ENGINE_MENU = Menu(
    [
        MenuItem("p", "plug", "plug the vehicle in (starts an authorised supply)"),
        MenuItem("u", "unplug", "unplug the vehicle (ends the supply)"),
        MenuItem("k", "ko", "report a fault: the engine goes KO", ("fault",)),
        MenuItem("o", "ok", "recover from a fault", ("recover",)),
        MenuItem("r", "request", "request a charge from Central", ("charge",), "kWh"),
        MenuItem("s", "status", "show the engine's status"),
        MenuItem("?", "help", "show this menu", ("h",)),
        MenuItem("q", "quit", "stop the engine", ("exit",)),
    ]
)
