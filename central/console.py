"""Central's operator console: commands typed on stdin, a live status table on a TTY.

Commands: ``status``, ``stop CP|all``, ``resume CP|all``, ``revoke CP``,
``price CP EUR``, ``alert LOCATION``, ``clear LOCATION``, ``help``, ``quit``.
When stdin is not a terminal the same commands are read as plain lines (scripts,
tests) and logs stay plain.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading

from rich.console import Console as RichConsole
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from central.errors import CentralError
from central.network import Network
from central.states import CPState

__all__ = ["Console"]

COLOURS = {
    CPState.ACTIVATED: "green",
    CPState.SUPPLYING: "bold green",
    CPState.STOPPED: "dark_orange",
    CPState.BROKEN: "red",
    CPState.DISCONNECTED: "grey50",
}

HELP = """commands:
  status               show every charge point
  stop CP|all          stop one charge point or all (Out of Order)
  resume CP|all        resume one or all
  revoke CP            revoke a CP's key (STOPPED until its monitor re-authenticates)
  price CP EUR         set the price in EUR/kWh
  alert LOCATION       raise a weather alert;  clear LOCATION  clears it
  quit                 stop Central"""


class Console:
    def __init__(self, network: Network, stop: asyncio.Event, *, interactive: bool) -> None:
        self._network = network
        self._stop = stop
        self._interactive = interactive
        self._out = RichConsole(highlight=False)

    def screen(self) -> Group:
        """The live view: every CP with its colour, then the latest events."""
        events = "\n".join(self._network.fleet.recent) or "no events yet"
        return Group(self.table(), Text("Latest events", style="bold"), Text(events))

    def table(self) -> Table:
        table = Table(title="EVCharging Central", expand=False)
        for column in ("CP", "location", "state", "€/kWh", "driver", "kW", "kWh", "€"):
            table.add_column(column)
        for cp in sorted(self._network.fleet.cps.values(), key=lambda c: c.id):
            s = cp.session
            label = "Out of Order" if cp.state is CPState.STOPPED else str(cp.state)
            table.add_row(
                cp.id,
                cp.location,
                f"[{COLOURS[cp.state]}]{label}[/]",
                f"{cp.price:.2f}",
                (s.driver_id or "local") if s else "",
                f"{s.kw:.1f}" if s else "",
                f"{s.kwh:.2f}" if s else "",
                f"{s.eur:.2f}" if s else "",
            )
        return table

    async def run(self) -> None:
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def read() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read, name="console", daemon=True).start()
        live = Live(self.screen(), console=self._out, refresh_per_second=1, transient=False)
        with live if self._interactive else contextlib.nullcontext():
            while True:
                try:
                    line = await asyncio.wait_for(lines.get(), 1.0)
                except TimeoutError:
                    if self._interactive:
                        live.update(self.screen())
                    continue
                if line is None:
                    return  # stdin closed: Central keeps running
                await self.execute(line)

    async def execute(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        command, args = words[0].lower(), words[1:]
        operator, weather = self._network.operator, self._network.weather
        try:
            if command == "status":
                self._out.print(self.table())
            elif command in ("stop", "resume") and len(args) == 1:
                target = None if args[0] == "all" else args[0]
                act = operator.stop if command == "stop" else operator.resume
                count = await act(target, "console")
                self._out.print(f"{command}: {count} charge point(s)")
            elif command == "revoke" and len(args) == 1:
                await operator.revoke_key(args[0], "console")
                self._out.print(f"key of {args[0]} revoked")
            elif command == "price" and len(args) == 2:
                price = await operator.set_price(args[0], args[1], "console")
                self._out.print(f"price of {args[0]} is now {price} €/kWh")
            elif command == "alert" and len(args) >= 1:
                count = await weather.alert(" ".join(args), None, "console")
                self._out.print(f"weather alert raised; {count} charge point(s) affected")
            elif command == "clear" and len(args) >= 1:
                count = await weather.clear(" ".join(args), "console")
                self._out.print(f"weather alert cleared; {count} charge point(s) affected")
            elif command in ("quit", "exit"):
                self._stop.set()
            else:
                self._out.print(HELP)
        except CentralError as exc:
            self._out.print(f"[red]{exc.message}[/]")
