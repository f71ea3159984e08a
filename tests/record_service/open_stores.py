"""Running a scenario against a store opened in an event loop of its own, as a worker would."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from record_service.storage import Store


def with_open_store(store: Store, body: Callable[[], Awaitable[None]]) -> None:
    """Run the coroutine function ``body`` with ``store`` opened, then close it."""
    async def scenario():
        await store.open()
        try:
            await body()
        finally:
            await store.close()

    asyncio.run(scenario())
