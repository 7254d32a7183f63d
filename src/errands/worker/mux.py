"""Replies from many children, in the supervising parent's own thread.

POSIX: one selector over the children's stdout pipes plus a self-pipe for wake-ups, so a reply costs a read
and no thread hand-off. Windows (pipes can't be selected): a reader thread per child feeding a queue.
Either way `poll` returns (key, line-or-None) pairs: None is the child's EOF; a key of None is a wake-up.
"""

from __future__ import annotations

import os
import queue
import selectors
import threading
from collections.abc import Hashable
from typing import IO, Protocol

Event = tuple[Hashable | None, bytes | None]


class Mux(Protocol):
    def add(self, key: Hashable, stream: IO[bytes]) -> None: ...

    def poll(self, timeout_s: float) -> list[Event]: ...

    def wake(self) -> None: ...

    def close(self) -> None: ...


class SelectorMux:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._partial: dict[int, bytes] = {}
        self._closed = False

    def add(self, key: Hashable, stream: IO[bytes]) -> None:
        fd = stream.fileno()
        os.set_blocking(fd, False)
        self._partial[fd] = b""
        self._selector.register(fd, selectors.EVENT_READ, key)

    def poll(self, timeout_s: float) -> list[Event]:
        events: list[Event] = []
        if self._closed:
            return events
        for selected, _ in self._selector.select(max(0.0, timeout_s)):
            fd = int(selected.fd)
            if selected.data is None:
                self._drain_wake()
                events.append((None, None))
                continue
            events.extend(self._read(fd, selected.data))
        return events

    def _read(self, fd: int, key: Hashable) -> list[Event]:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return []
        if not data:
            self._selector.unregister(fd)
            del self._partial[fd]
            return [(key, None)]
        *lines, self._partial[fd] = (self._partial[fd] + data).split(b"\n")
        return [(key, line) for line in lines]

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):  # full: a wake-up is pending already; closed: nobody waits
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


class ThreadMux:
    def __init__(self) -> None:
        self._events: queue.Queue[Event] = queue.Queue()

    def add(self, key: Hashable, stream: IO[bytes]) -> None:
        threading.Thread(target=self._read, args=(key, stream), daemon=True).start()

    def _read(self, key: Hashable, stream: IO[bytes]) -> None:
        for line in stream:
            self._events.put((key, line.rstrip(b"\n")))
        self._events.put((key, None))

    def poll(self, timeout_s: float) -> list[Event]:
        try:
            events = [self._events.get(timeout=max(0.0, timeout_s))]
        except queue.Empty:
            return []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    def wake(self) -> None:
        self._events.put((None, None))

    def close(self) -> None:
        pass


def new_mux() -> Mux:
    return SelectorMux() if os.name == "posix" else ThreadMux()
