"""Cursor pagination over the API's lists (newest first; `starting_after`, `ending_before`,
`has_more`): a page knows the request that produced it and asks for the next one, and
iterating a page goes on through every later page, fetching each when it is reached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

from ._core import Operation

T = TypeVar("T")


def _items(body: Any) -> tuple[list[Any], bool]:
    return list(body.data), bool(body.has_more)


def _next_operation(op: Operation[Any], data: list[Any], has_more: bool) -> Operation[Any] | None:
    """The request for the page after `data`, in the direction `op` reads: down the list
    (`starting_after` the last item) unless it asked for `ending_before` (then up)."""
    if not has_more or not data:
        return None
    params = dict(op.params or {})
    # One cursor at a time: a caller's other cursor, kept, would bound every later page too.
    if params.get("ending_before") is not None:
        params.pop("starting_after", None)
        params["ending_before"] = data[0].id
    else:
        params.pop("ending_before", None)
        params["starting_after"] = data[-1].id
    return dataclasses.replace(op, params=params)


class SyncPage(Generic[T]):
    """One page of a list. `for item in page` yields this page's items and then every
    later page's, fetched as they are reached; `data` and `has_more` are this page's."""

    def __init__(self, fetch: Callable[[Operation[Any]], Any], op: Operation[Any], body: Any) -> None:
        self._fetch = fetch
        self._op = op
        self.data: list[T]
        self.data, self.has_more = _items(body)

    def next_page(self) -> SyncPage[T] | None:
        """The next page, or `None` after the last."""
        op = _next_operation(self._op, self.data, self.has_more)
        return None if op is None else SyncPage(self._fetch, op, self._fetch(op))

    def iter_pages(self) -> Iterator[SyncPage[T]]:
        """This page and every later one."""
        page: SyncPage[T] | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data

    def __repr__(self) -> str:
        return f"SyncPage(data=[{len(self.data)} items], has_more={self.has_more})"


class AsyncPage(Generic[T]):
    """One page of a list, for `AsyncPushdial`: `async for item in page` yields this
    page's items and then every later page's."""

    def __init__(
        self, fetch: Callable[[Operation[Any]], Awaitable[Any]], op: Operation[Any], body: Any
    ) -> None:
        self._fetch = fetch
        self._op = op
        self.data: list[T]
        self.data, self.has_more = _items(body)

    async def next_page(self) -> AsyncPage[T] | None:
        """The next page, or `None` after the last."""
        op = _next_operation(self._op, self.data, self.has_more)
        return None if op is None else AsyncPage(self._fetch, op, await self._fetch(op))

    async def iter_pages(self) -> AsyncIterator[AsyncPage[T]]:
        """This page and every later one."""
        page: AsyncPage[T] | None = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

    def __repr__(self) -> str:
        return f"AsyncPage(data=[{len(self.data)} items], has_more={self.has_more})"


class AsyncPaginator(Generic[T]):
    """What an async `list(...)` returns before anything is fetched: `await` it for the
    first page, or `async for` over it for every item of every page."""

    def __init__(self, fetch: Callable[[Operation[Any]], Awaitable[Any]], op: Operation[Any]) -> None:
        self._fetch = fetch
        self._op = op

    async def _first(self) -> AsyncPage[T]:
        return AsyncPage(self._fetch, self._op, await self._fetch(self._op))

    def __await__(self) -> Generator[Any, None, AsyncPage[T]]:
        return self._first().__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        page = await self._first()
        async for item in page:
            yield item
