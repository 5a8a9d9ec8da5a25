"""How many segmentations run at once: `workers` run, up to `queue` more wait at most `wait`
seconds for a free worker, and any request beyond that is answered 503 at once, with a Retry-After,
rather than piling up threads and memory on a busy machine."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager

from segtool.serve.query import RequestError


class Busy(RequestError):
    status = 503

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class WorkSlots:
    """Admission for the event loop's requests (its counters are only touched from that loop)."""

    def __init__(self, workers: int, queue: int, wait: float):
        self.workers, self.queue, self.wait = workers, queue, wait
        self.running = 0
        self.waiting = 0
        self._free = None  # an anyio.Semaphore, made inside the event loop on first use

    def state(self) -> dict:
        return {"workers": self.workers, "running": self.running, "waiting": self.waiting, "queue": self.queue}

    @asynccontextmanager
    async def slot(self):
        import anyio

        if self._free is None:
            self._free = anyio.Semaphore(self.workers)
        if self.running + self.waiting >= self.workers + self.queue:
            raise Busy(f"busy: {self.running} segmentations running and {self.waiting} waiting; retry shortly",
                       self.wait or 1)
        self.waiting += 1
        acquired = False
        try:
            with anyio.move_on_after(self.wait):
                await self._free.acquire()
                acquired = True
        finally:
            self.waiting -= 1
        if not acquired:
            raise Busy(f"busy: no worker was free within {self.wait:g} s; retry shortly", self.wait or 1)
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()
