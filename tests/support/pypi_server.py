"""A loopback stand-in for PyPI, serving one package's wheels, for uvw.py's tests.

It speaks the simple repository API clients fetch a release by, ``GET /simple/<name>/``,
in both forms PyPI serves by the request's Accept header: JSON (PEP 691: ``{"meta",
"name", "files": [{"filename", "url", "hashes": {"sha256"}}]}``), which uvw.py and a
recent pip ask for, and HTML (PEP 503: links ending in ``#sha256=<digest>``) for any
other client. Files are served from ``/files/``.
Every request's path is recorded, so a test tells whether the network was used.
"""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from dataclasses import dataclass, field
from typing import Self

from aiohttp import web

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def fake_uv_wheel(version: str, platform_tag: str, *, script: str) -> tuple[str, bytes]:
    """A wheel shaped like uv's: ``uv-<version>.data/scripts/uv`` is the binary (here a
    shell script), with the metadata pip needs to install it."""
    name = f"uv-{version}-py3-none-{platform_tag}.whl"
    info = f"uv-{version}.dist-info"
    files = {
        f"uv-{version}.data/scripts/uv": script.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: uv\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: py3-none-"
            f"{platform_tag}\n"
        ).encode(),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for path, data in files.items():
            info_entry = zipfile.ZipInfo(path)
            info_entry.external_attr = (stat.S_IFREG | 0o755) << 16  # as uv's own wheel
            wheel.writestr(info_entry, data)
        wheel.writestr(f"{info}/RECORD", record)
    return name, buffer.getvalue()


@dataclass
class LoopbackPyPI:
    """``wheels``: file name -> bytes; ``listed_sha256`` overrides the digest the index
    lists for a file (a tampered or corrupted download)."""

    package: str
    wheels: dict[str, bytes] = field(default_factory=dict)
    listed_sha256: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    def digest(self, name: str) -> str:
        return self.listed_sha256.get(name) or hashlib.sha256(self.wheels[name]).hexdigest()

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._record])
        app.router.add_get(f"/simple/{self.package}/", self._simple)
        app.router.add_get("/files/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(
        self, request: web.Request, handler: web.RequestHandler
    ) -> web.StreamResponse:
        self.requests.append(request.path)
        return await handler(request)

    async def _simple(self, request: web.Request) -> web.Response:
        if SIMPLE_JSON in request.headers.get("Accept", ""):
            files = [
                {
                    "filename": name,
                    "url": f"{self.url}/files/{name}",
                    "hashes": {"sha256": self.digest(name)},
                }
                for name in self.wheels
            ]
            page = {"meta": {"api-version": "1.1"}, "name": self.package, "files": files}
            return web.json_response(page, content_type=SIMPLE_JSON)
        links = "".join(
            f'<a href="{self.url}/files/{name}#sha256={self.digest(name)}">{name}</a>\n'
            for name in self.wheels
        )
        return web.Response(text=f"<html><body>\n{links}</body></html>", content_type="text/html")

    async def _file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.wheels:
            raise web.HTTPNotFound()
        return web.Response(body=self.wheels[name], content_type="application/octet-stream")
