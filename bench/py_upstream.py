"""The fast upstream of the recorder-overhead benchmark in Python (aiohttp), used only when Node is missing.

    python bench/py_upstream.py        # prints: gwsvcr: listening on http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

BODY = b'{"statusCode":0}'


async def answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json", charset="UTF-8")


async def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"gwsvcr: listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), 30 * 60)
    except TimeoutError:
        pass
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
