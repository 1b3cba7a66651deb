"""LiveKit Cloud host names on loopback, for the real livekit-api client.

livekit-api changes behaviour on LiveKit Cloud hosts (``*.livekit.cloud``): it replays a
failed request up to 3 times (``livekit/api/_failover.py``). A loopback server at
``127.0.0.1`` never sees that path. Here a test names the server
``http://project.livekit.cloud:PORT`` and that one name resolves to 127.0.0.1.

How the unmodified client resolves names: ``LiveKitAPI`` builds its own
``aiohttp.ClientSession`` whose ``TCPConnector`` uses aiohttp's ``DefaultResolver``. With
no ``aiodns`` installed that is ``ThreadedResolver``, which calls
``loop.getaddrinfo()``, which runs ``socket.getaddrinfo`` (looked up at call time) in the
default executor. So wrapping ``socket.getaddrinfo`` for the chosen names reaches every
client in the process, including sessions built before the block, with nothing passed
to them. Other names resolve as before. No ``/etc/hosts`` change, no root.

    with cloud_host(server.url) as url:  # http://project.livekit.cloud:PORT
        async with api.LiveKitAPI(url=url, api_key=..., api_secret=...) as lk:
            ...
"""

from __future__ import annotations

import contextlib
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LOOPBACK = "127.0.0.1"
DEFAULT_CLOUD_HOST = "project.livekit.cloud"

_original_getaddrinfo = socket.getaddrinfo
_names: Counter[str] = Counter()  # names resolved to loopback, by how many blocks hold them


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and name.lower().rstrip(".") in _names:
        host = LOOPBACK
    return _original_getaddrinfo(host, *args, **kwargs)


@contextlib.contextmanager
def resolve_to_loopback(*names: str) -> Iterator[None]:
    """While the block runs, these host names resolve to 127.0.0.1 in this process."""
    added = [n.lower().rstrip(".") for n in names]
    if not _names:
        socket.getaddrinfo = _getaddrinfo
    _names.update(added)
    try:
        yield
    finally:
        _names.subtract(added)
        for name in added:
            if _names[name] <= 0:
                del _names[name]
        if not _names:
            socket.getaddrinfo = _original_getaddrinfo


def with_host(url: str, host: str) -> str:
    """``url`` with its host name replaced, keeping scheme, port and path."""
    parts = urlsplit(url)
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def cloud_host(url: str, host: str = DEFAULT_CLOUD_HOST) -> Iterator[str]:
    """Yields ``url`` (a loopback server's) renamed to ``host``, which resolves to
    127.0.0.1 while the block runs: e.g. ``http://project.livekit.cloud:PORT``."""
    with resolve_to_loopback(host):
        yield with_host(url, host)
