"""The set of locations the office watches: from a file, the menu and the HTTP endpoint.

With a locations file, that file is the one source of truth: the menu and the endpoint
edit it (atomically, keeping comments), and edits by hand are picked up at the next poll.
Without one, the set lives in memory. Safe to use from several threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from weather.errors import InvalidLocation, LocationsFileError
from weather.files import (
    FileFormatError,
    WatchedFile,
    add_location,
    check_location,
    parse_locations,
    remove_location,
    write_atomically,
)

__all__ = ["LocationBook"]

log = logging.getLogger(__name__)


class LocationBook:
    """Locations in the order they were added.

    Args:
        path: the locations file, or None to keep the set in memory only.
        initial: locations to start with when there is no file.
    """

    def __init__(self, path: Path | None = None, initial: Iterable[str] = ()) -> None:
        self.path = path
        self._file = WatchedFile(path) if path is not None else None
        self._names: list[str] = []
        self._lock = threading.Lock()
        for name in initial:
            name = check_location(name)
            if name not in self._names:
                self._names.append(name)
        self.refresh()

    def names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    def refresh(self) -> None:
        """Pick up edits of the file; a file that does not parse keeps the last good set."""
        with self._lock:
            try:
                self._reload()
            except FileFormatError as exc:
                log.warning(
                    "locations file does not parse; keeping the previous locations",
                    extra={"fields": {"file": self.path, "error": exc}},
                )

    def add(self, name: str) -> bool:
        """Watch ``name``; returns False if it was already watched.

        Raises:
            InvalidLocation: the name is not usable as a location.
            LocationsFileError: the locations file does not parse or cannot be written.
        """
        name = check_location(name)
        with self._lock:
            self._reload_for_edit()
            if name in self._names:
                return False
            if self._file is None:
                self._names.append(name)
            else:
                self._write(lambda text: add_location(text, name))
        log.info("location added", extra={"fields": {"location": name}})
        return True

    def remove(self, name: str) -> bool:
        """Stop watching ``name``; returns False if it was not watched.

        Raises:
            LocationsFileError: the locations file does not parse or cannot be written.
        """
        try:
            name = check_location(name)
        except InvalidLocation:
            return False
        with self._lock:
            self._reload_for_edit()
            if name not in self._names:
                return False
            if self._file is None:
                self._names.remove(name)
            else:
                self._write(lambda text: remove_location(text, name))
        log.info("location removed", extra={"fields": {"location": name}})
        return True

    # -- with the lock held -----------------------------------------------------------
    def _reload(self) -> None:
        """Re-read the file if it changed. Raises FileFormatError (the set is kept)."""
        if self._file is None or not self._file.refresh():
            return
        if self._file.text is None:
            if self._names:
                log.warning(
                    "locations file missing; watching none until it exists",
                    extra={"fields": {"file": self.path}},
                )
            self._names = []
            return
        names = parse_locations(self._file.text)
        if names != self._names:
            log.info(
                "locations loaded",
                extra={"fields": {"file": self.path, "locations": ", ".join(names)}},
            )
        self._names = names

    def _reload_for_edit(self) -> None:
        try:
            self._reload()
            if self._file is not None and self._file.text is not None:
                parse_locations(self._file.text)  # unchanged but broken: refuse to edit it
        except FileFormatError as exc:
            raise LocationsFileError(f"{self.path} does not parse ({exc}); fix it first") from None

    def _write(self, edit: Callable[[str], str]) -> None:
        assert self._file is not None
        new_text = edit(self._file.text or "")
        try:
            write_atomically(self._file.path, new_text)
        except OSError as exc:
            raise LocationsFileError(f"cannot write {self.path}: {exc.strerror}") from None
        self._file.refresh()
        self._names = parse_locations(new_text)
