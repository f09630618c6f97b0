"""Menu commands as data, and a pure parser for keys and lines (``h 5``, ``swallow 5``).

Each program declares its own :class:`Menu` (``cp_engine.menu``, ``cp_monitor.menu``).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.chargepoint.errors import MenuError

__all__ = ["Command", "Menu", "MenuItem"]


@dataclass(frozen=True)
class MenuItem:
    """One command: its key, its words, what it does; ``number``: takes an optional number."""

    key: str
    name: str
    help: str
    aliases: tuple[str, ...] = ()
    number: str = ""  # what the number means, e.g. "seconds"; empty: takes none
    default: float | None = None


@dataclass(frozen=True)
class Command:
    name: str
    number: float | None = None


class Menu:
    def __init__(self, items: list[MenuItem]) -> None:
        self.items = items
        self._by_word: dict[str, MenuItem] = {}
        for item in items:
            for word in (item.key, item.name, *item.aliases):
                if word.lower() in self._by_word:
                    raise ValueError(f"menu word {word!r} used twice")
                self._by_word[word.lower()] = item

    def parse(self, line: str) -> Command:
        """``"k"``, ``"ko"``, ``"h 5"``, ``"swallow 5"`` → a :class:`Command`.

        Raises:
            MenuError: unknown command, or a number where none is expected / not a number.
        """
        words = line.strip().split()
        if not words:
            raise MenuError("empty command; press ? for help")
        item = self._by_word.get(words[0].lower())
        if item is None:
            raise MenuError(f"unknown command {words[0]!r}; press ? for help")
        if len(words) > 2 or (len(words) == 2 and not item.number):
            raise MenuError(f"{item.name} takes {'one number' if item.number else 'no argument'}")
        number = item.default
        if len(words) == 2:
            try:
                number = float(words[1])
            except ValueError:
                raise MenuError(f"{item.name}: {words[1]!r} is not a number") from None
            if not number > 0 or number > 86400:
                raise MenuError(f"{item.name}: {item.number} must be between 0 and 86400")
        return Command(item.name, number)

    def immediate(self, key: str) -> bool:
        """On a terminal, a key acts at once unless its command takes a number."""
        item = self._by_word.get(key.lower())
        return item is not None and item.key == key.lower() and not item.number

    def help_lines(self) -> list[str]:
        out = []
        for item in self.items:
            arg = f" [{item.number}]" if item.number else ""
            out.append(f"  {item.key}{arg:<12} {item.name:<16} {item.help}")
        return out
