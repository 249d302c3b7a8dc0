"""The built documentation site in a real browser: build it, serve it on 127.0.0.1, and drive
headless Chromium over the DevTools protocol (aiohttp's websocket client), collecting console
errors, the page text and a screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.helpers.docs import REPO


def build_site(out: Path) -> Path:
    """``mkdocs build --strict`` into ``out``; fails the test with MkDocs' output on a warning."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@contextlib.contextmanager
def serve(root: Path):
    """An HTTP server for ``root`` on a free port of 127.0.0.1; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def open_page(browser: str, url: str, screenshot: Path, profile: Path) -> tuple[str, list[str], Path]:
    """Load ``url`` in headless Chromium at 1280 x 900: ``(the article's text, console errors,
    the screenshot's path)``. Errors are console.error calls, uncaught exceptions and failed
    loads (the browser's log at level error)."""
    return asyncio.run(_open_page(browser, url, screenshot, profile))


async def _open_page(browser: str, url: str, screenshot: Path, profile: Path):
    import aiohttp

    process = await asyncio.create_subprocess_exec(
        browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
        f"--user-data-dir={profile / 'chromium'}", "--window-size=1280,900", "about:blank",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        endpoint = None
        while endpoint is None:
            line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
            if not line:
                raise AssertionError("chromium exited before it listened for DevTools")
            if "DevTools listening on " in line:
                endpoint = line.split("DevTools listening on ", 1)[1].strip()
        port = endpoint.split(":")[2].split("/")[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                target = next(t for t in await response.json() if t["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = _Page(ws)
                for domain in ("Page", "Runtime", "Log"):
                    await page.call(f"{domain}.enable")
                await page.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
                                mobile=False)
                await page.call("Page.navigate", url=url)
                await page.wait_for("Page.loadEventFired", 60)
                await asyncio.sleep(1.0)  # scripts that run after load (search index, palette)
                text = await page.call("Runtime.evaluate", expression="document.querySelector('article') ? "
                                       "document.querySelector('article').innerText : ''", returnByValue=True)
                shot = await page.call("Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                return text["result"].get("value", ""), page.errors, screenshot
    finally:
        process.kill()
        await process.wait()


class _Page:
    """One DevTools session: numbered calls, and the events that say something went wrong."""

    def __init__(self, ws):
        self.ws, self.next_id, self.errors, self.events = ws, 0, [], []

    async def _receive(self, timeout: float) -> dict:
        message = json.loads((await asyncio.wait_for(self.ws.receive(), timeout)).data)
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"{entry.get('text')} ({entry.get('url', '')})")
        elif method:
            self.events.append(method)
        return message

    async def call(self, method: str, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        call_id = self.next_id
        await self.ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = await self._receive(timeout)
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def wait_for(self, event: str, timeout: float) -> None:
        while event not in self.events:
            await self._receive(timeout)
