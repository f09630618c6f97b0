"""What the views use, reached through the app (the composition root puts it there)."""

from __future__ import annotations

from dataclasses import dataclass

from common.http import app_extension
from web_ui.central_client import CentralClient
from web_ui.live import LiveBoard
from web_ui.registry_client import RegistryClient
from web_ui.security import LoginThrottle
from web_ui.settings import WebSettings

__all__ = ["Clients", "clients", "login_throttle", "settings"]


@dataclass(frozen=True)
class Clients:
    """The dashboard's connections to the rest of the system."""

    central: CentralClient
    live: LiveBoard
    registry: RegistryClient | None = None


def clients() -> Clients:
    return app_extension("ev_web.clients", Clients)


def settings() -> WebSettings:
    return app_extension("ev_web.settings", WebSettings)


def login_throttle() -> LoginThrottle:
    return app_extension("ev_web.throttle", LoginThrottle)
