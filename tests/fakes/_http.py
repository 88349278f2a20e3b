"""A tiny aiohttp server runner shared by the API fakes."""

from __future__ import annotations

from collections import Counter

from aiohttp import web


class FakeServer:
    """Runs an aiohttp app on 127.0.0.1:<free port> inside the current event loop."""

    def __init__(self) -> None:
        self.app = web.Application(middlewares=[self._throttle])
        self.requests: Counter[str] = Counter()
        self._throttle_left = 0
        self._retry_after: str | None = "1"
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def throttle(self, times: int, retry_after: str | None = "0.05") -> None:
        """The next ``times`` API requests get 429 Too Many Requests with this Retry-After."""
        self._throttle_left = times
        self._retry_after = retry_after

    @web.middleware
    async def _throttle(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.requests[request.path] += 1
        if self._throttle_left > 0 and not request.path.endswith("/token"):
            self._throttle_left -= 1
            self.requests["429"] += 1
            headers = {"Retry-After": self._retry_after} if self._retry_after is not None else {}
            return web.json_response({"error": "rate_limited"}, status=429, headers=headers)
        return await handler(request)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self):  # type: ignore[no-untyped-def]
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
