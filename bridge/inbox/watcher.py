"""Wake the relay when anything lands in the run directory. The handler only sets a flag, so it cannot fail
in a way that stops the observer; the relay rescans the folders itself, so a missed event loses nothing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver


class _Wake(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._wake.set()
        except Exception:
            pass


def start_watching(folders: list[Path], wake: threading.Event) -> tuple[BaseObserver, str]:
    """Watch ``folders`` recursively with inotify, or by polling where inotify is unavailable (or when
    PAIRLOOP_WATCH=poll). Returns the observer and which kind it is."""
    handler = _Wake(wake)
    if os.environ.get("PAIRLOOP_WATCH") != "poll":
        try:
            observer: BaseObserver = Observer()
            for folder in folders:
                observer.schedule(handler, str(folder), recursive=True)
            observer.start()
            return observer, "inotify" if type(observer).__name__ == "InotifyObserver" else "native"
        except OSError:
            pass  # inotify watch limits, unsupported filesystem...: fall back to polling
    observer = PollingObserver(timeout=0.2)
    for folder in folders:
        observer.schedule(handler, str(folder), recursive=True)
    observer.start()
    return observer, "polling"
