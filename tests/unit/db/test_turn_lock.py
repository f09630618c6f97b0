"""TurnLock: threads get the database in the order they asked for it."""

from __future__ import annotations

import threading
import time

from common.db import TurnLock


def _wait_for_waiters(lock: TurnLock, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(lock._waiting) < count:
        assert time.monotonic() < deadline, "the threads never queued"
        time.sleep(0.001)


def test_waiting_threads_get_their_turn_in_order_even_against_a_greedy_owner() -> None:
    lock = TurnLock()
    order: list[str] = []
    stop = threading.Event()

    def greedy() -> None:  # takes the lock again the moment it lets go, like a busy writer
        while not stop.is_set():
            with lock:
                order.append("greedy")

    def waiter(name: str) -> None:
        with lock:
            order.append(name)

    with lock:  # hold it while the others line up: greedy first, then the waiters
        hog = threading.Thread(target=greedy)
        hog.start()
        _wait_for_waiters(lock, 1)
        waiters = [threading.Thread(target=waiter, args=(f"w{i}",)) for i in range(3)]
        for i, thread in enumerate(waiters, start=2):
            thread.start()
            _wait_for_waiters(lock, i)
    for thread in waiters:
        thread.join(5)
        assert not thread.is_alive(), "a waiter never got its turn"
    stop.set()
    hog.join(5)
    assert order[:4] == ["greedy", "w0", "w1", "w2"]


def test_the_owner_may_enter_again() -> None:
    lock = TurnLock()
    with lock, lock:
        pass
    acquired = threading.Event()

    def other() -> None:
        with lock:
            acquired.set()

    thread = threading.Thread(target=other)
    thread.start()
    assert acquired.wait(5), "released after the outer exit"
    thread.join()
