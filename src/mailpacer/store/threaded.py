"""INTERIM shim (replaced by the store branch's AsyncStore): store calls in one thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

from mailpacer.core.errors import StateConflict
from mailpacer.store.base import Store


class AsyncStore:
    """Every Store method as a coroutine run in one dedicated thread."""

    def __init__(self, factory: Callable[[], Store], *, close_store: bool = True) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store")
        self._store: Store = self._pool.submit(factory).result()
        self._close_store = close_store

    async def call(self, fn: Callable[[Store], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, self._store)

    async def close(self) -> None:
        if self._close_store:
            await self.call(lambda s: s.close())
        self._pool.shutdown(wait=False)

    async def set_campaign_state(
        self, cid: int, state: Any, reason: Any = None, *, expected: Any = None
    ) -> Any:
        def go(s: Store) -> Any:
            if expected is not None:
                cur = s.get_campaign(cid)
                if cur.state not in expected:
                    raise StateConflict("campaign", cur.state.value, state.value, current=cur.state)
            return s.set_campaign_state(cid, state, reason)

        return await self.call(go)

    async def mark_started(self, worker: str, ids: Any, at: float) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self.call(lambda s: getattr(s, name)(*args, **kwargs))

        return method
