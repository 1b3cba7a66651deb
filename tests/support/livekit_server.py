"""A loopback stand-in for the LiveKit server API (Twirp over HTTP) for offline tests.

Tests point the real ``livekit-api`` client at it, so the whole wire path is exercised:
JWT signing, protobuf encoding, HTTP status handling and the client's own mapping of
Twirp errors to ``ServerError`` / ``SipCallError``. Only the server side is faked.

It follows the open-source livekit-server where the two could differ:

* A token that fails verification (bad signature, unknown key, expired) gets HTTP 401
  with a plain-text body, so the client raises ``ServerError(code="unknown", status=401)``.
* A missing grant (or no Authorization header) gets Twirp ``unauthenticated`` with the
  message ``"permissions denied"`` (HTTP 401), not ``permission_denied``/403.

Branch on ``ServerError.status == 401`` to detect both, as the real server allows.

Besides Twirp replies, :meth:`LoopbackLiveKit.respond` scripts what sits in front of a
real server can put on the wire, mapped by livekit-api 1.2 (``twirp_client.py``) as:

* :class:`RawReply` with a 5xx and a non-JSON body (``proxy_error(504)``: an nginx HTML
  page, as a proxy timing out while a phone rings; ``plain_error(502)``): the client
  cannot read Twirp JSON, so ``ServerError(code="unknown", message="", status=5xx)``.
* ``undecodable()``: HTTP 200 whose body is not the response protobuf; the client's
  ``FromString`` raises ``google.protobuf.message.DecodeError``, unwrapped. (A 200 with an
  *empty* body decodes as the empty message: a success.)
* :class:`Drop`: the connection closes with no response; the client raises
  ``aiohttp.ServerDisconnectedError`` (an ``aiohttp.ClientError``).
* :class:`Hang`: no response until the client's timeout, ``asyncio.TimeoutError``.

On a LiveKit Cloud host (``*.livekit.cloud``, see ``tests/support/cloud_host.py``) the
client replays a request after a transport error or a 5xx, up to 3 attempts, asking
``GET /settings/regions`` (served here from :attr:`LoopbackLiveKit.regions`, a JSON
``{"regions": [{"region", "url", "distance"}]}`` as LiveKit Cloud answers it) for other
origins to try; with none it replays against the same host.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self, TypeVar

from aiohttp import web
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.api.access_token import Claims
from livekit.protocol import models, room, sip

# Twirp error code -> HTTP status, from the Twirp wire spec.
_TWIRP_HTTP_STATUS = {
    **dict.fromkeys(["invalid_argument", "malformed", "out_of_range"], 400),
    **dict.fromkeys(["unauthenticated"], 401),
    **dict.fromkeys(["permission_denied"], 403),
    **dict.fromkeys(["not_found", "bad_route"], 404),
    **dict.fromkeys(["canceled", "deadline_exceeded"], 408),
    **dict.fromkeys(["already_exists", "aborted"], 409),
    **dict.fromkeys(["failed_precondition"], 412),
    **dict.fromkeys(["resource_exhausted"], 429),
    **dict.fromkeys(["unknown", "internal", "dataloss"], 500),
    **dict.fromkeys(["unimplemented"], 501),
    **dict.fromkeys(["unavailable"], 503),
}

# SIP response code -> Twirp code, as livekit/protocol (livekit/sip.go) maps the codes a
# phone call is likely to meet; it maps every other code >= 300 to invalid_argument.
_SIP_TO_TWIRP = {
    **dict.fromkeys([401, 403, 603], "permission_denied"),
    **dict.fromkeys([404, 604], "not_found"),
    **dict.fromkeys([407], "unauthenticated"),
    **dict.fromkeys([408, 504], "deadline_exceeded"),
    **dict.fromkeys([480, 486, 600], "resource_exhausted"),
    **dict.fromkeys([487], "aborted"),
    **dict.fromkeys([500, 502, 503], "failed_precondition"),
}


@dataclass(frozen=True)
class ErrorReply:
    """A Twirp error as the server puts it on the wire: JSON with code, msg and meta."""

    code: str
    msg: str
    http_status: int
    meta: Mapping[str, str] = field(default_factory=dict)

    def to_response(self) -> web.Response:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:  # Twirp omits empty meta
            body["meta"] = dict(self.meta)
        return web.json_response(body, status=self.http_status)


def twirp_error(
    code: str,
    msg: str = "",
    *,
    http_status: int | None = None,
    meta: Mapping[str, str] | None = None,
) -> ErrorReply:
    """A Twirp error; the HTTP status follows the code unless given. A ``meta`` holding
    ``sip_status_code`` or ``sip_transfer_reason`` makes the client raise SipCallError."""
    return ErrorReply(code, msg, http_status or _TWIRP_HTTP_STATUS[code], dict(meta or {}))


def sip_error(
    sip_status_code: int,
    sip_status: str,
    *,
    code: str | None = None,
    msg: str | None = None,
    http_status: int | None = None,
    meta: Mapping[str, str] | None = None,
) -> ErrorReply:
    """A failed dial as livekit-server reports it, e.g. ``sip_error(486, "Busy Here")``:
    Twirp code from the SIP code (486 -> resource_exhausted/429) and meta carrying
    ``sip_status_code``/``sip_status``, which the client turns into SipCallError."""
    return twirp_error(
        code or _SIP_TO_TWIRP.get(sip_status_code, "invalid_argument"),
        msg if msg is not None else f"sip status {sip_status_code}: {sip_status}",
        http_status=http_status,
        meta={"sip_status_code": str(sip_status_code), "sip_status": sip_status, **(meta or {})},
    )


@dataclass(frozen=True)
class Hang:
    """Reply marker: hold the request open until the client gives up (the handler is then
    cancelled) or the server closes (it then answers 503 ``unavailable``)."""


@dataclass(frozen=True)
class Drop:
    """Reply marker: close the TCP connection without sending any response, as a crashed
    server or a proxy resetting the connection would."""


@dataclass(frozen=True)
class RawReply:
    """Any HTTP reply, Twirp or not: what a proxy, a load balancer or a broken server
    puts on the wire in place of the API's answer."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain"

    def to_response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)


def proxy_error(status: int = 504, reason: str = "Gateway Time-out") -> RawReply:
    """An HTML error page as nginx serves it when the upstream fails, e.g. a gateway
    timing out while a SIP transfer rings."""
    title = f"{status} {reason}"
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return RawReply(status, page.encode(), "text/html")


def plain_error(status: int = 502, text: str = "Bad Gateway") -> RawReply:
    """A plain-text error, as a load balancer or Go's http.Error writes it."""
    return RawReply(status, f"{text}\n".encode(), "text/plain")


def undecodable(body: bytes = b"\xff\xff\xff\xff not a protobuf") -> RawReply:
    """HTTP 200 with a body that is not the response protobuf (it fails to decode)."""
    return RawReply(200, body, "application/protobuf")


@dataclass(frozen=True)
class Region:
    """One entry of LiveKit Cloud's ``/settings/regions`` answer. The client uses only
    ``url`` (ws/wss become http/https; the path is dropped)."""

    region: str
    url: str
    distance: str = "0"


@dataclass(frozen=True)
class RecordedRequest:
    """A request that passed authentication and grant checks, decoded."""

    service: str
    method: str
    message: Any  # the method's request message, e.g. TransferSIPParticipantRequest
    claims: Claims
    received_at: float  # time.monotonic()
    request_id: str = ""  # X-Livekit-Request-Id: the idempotency key, kept across replays


Reply = Message | ErrorReply | Hang | Drop | RawReply
Responder = Callable[[RecordedRequest], Awaitable[Reply]]


# Grant checks, (claims, request) -> allowed, mirroring livekit-server's Ensure*Permission.
def _sip_call(c: Claims, _: Any) -> bool:
    return bool(c.sip and c.sip.call)


def _sip_admin(c: Claims, _: Any) -> bool:
    return bool(c.sip and c.sip.admin)


def _room_list(c: Claims, _: Any) -> bool:
    return bool(c.video and c.video.room_list)


def _room_create(c: Claims, _: Any) -> bool:
    return bool(c.video and c.video.room_create)


def _room_admin(c: Claims, r: Any) -> bool:  # admin of the very room the request names
    room_name = r.room_name if isinstance(r, sip.TransferSIPParticipantRequest) else r.room
    return bool(c.video and c.video.room_admin and c.video.room == room_name)


def _sip_call_and_room_admin(c: Claims, r: Any) -> bool:
    return _sip_call(c, r) and _room_admin(c, r)


class _Method(NamedTuple):
    service: str
    request_type: type[Message]
    response_type: type[Message]
    allowed: Callable[[Claims, Any], bool]


# Supported methods with the grants livekit-server requires for each, which are exactly
# the ones livekit-api 1.2 signs into its token for that call (sip/room_service.py).
# Note DeleteRoom needs room_create and ListRooms room_list, not room_admin.
_METHODS: dict[str, _Method] = {
    "CreateSIPParticipant": _Method(
        "SIP", sip.CreateSIPParticipantRequest, sip.SIPParticipantInfo, _sip_call
    ),
    "TransferSIPParticipant": _Method(
        "SIP",
        sip.TransferSIPParticipantRequest,
        sip.TransferSIPParticipantResponse,
        _sip_call_and_room_admin,
    ),
    "ListSIPInboundTrunk": _Method(
        "SIP", sip.ListSIPInboundTrunkRequest, sip.ListSIPInboundTrunkResponse, _sip_admin
    ),
    "ListSIPOutboundTrunk": _Method(
        "SIP", sip.ListSIPOutboundTrunkRequest, sip.ListSIPOutboundTrunkResponse, _sip_admin
    ),
    "ListSIPDispatchRule": _Method(
        "SIP", sip.ListSIPDispatchRuleRequest, sip.ListSIPDispatchRuleResponse, _sip_admin
    ),
    "ListRooms": _Method("RoomService", room.ListRoomsRequest, room.ListRoomsResponse, _room_list),
    "DeleteRoom": _Method(
        "RoomService", room.DeleteRoomRequest, room.DeleteRoomResponse, _room_create
    ),
    "RemoveParticipant": _Method(
        "RoomService", room.RoomParticipantIdentity, room.RemoveParticipantResponse, _room_admin
    ),
    "ListParticipants": _Method(
        "RoomService", room.ListParticipantsRequest, room.ListParticipantsResponse, _room_admin
    ),
    "GetParticipant": _Method(
        "RoomService", room.RoomParticipantIdentity, models.ParticipantInfo, _room_admin
    ),
    "UpdateParticipant": _Method(
        "RoomService", room.UpdateParticipantRequest, models.ParticipantInfo, _room_admin
    ),
    "UpdateSubscriptions": _Method(
        "RoomService",
        room.UpdateSubscriptionsRequest,
        room.UpdateSubscriptionsResponse,
        _room_admin,
    ),
}


_T = TypeVar("_T")


def _pick(items: Iterable[_T], wanted: Iterable[str], id_field: str) -> list[_T]:
    """Filter like a List* call: an empty id filter means everything."""
    wanted = set(wanted)
    return [i for i in items if not wanted or getattr(i, id_field) in wanted]


class LoopbackLiveKit:
    """An async context manager serving the LiveKit Twirp API on 127.0.0.1.

    Replies come from a FIFO per method filled with :meth:`respond`, else from defaults:
    empty success for TransferSIPParticipant/DeleteRoom/RemoveParticipant/
    UpdateSubscriptions, a SIPParticipantInfo echoing the request for
    CreateSIPParticipant, the in-memory ``inbound_trunks``/``outbound_trunks``/
    ``dispatch_rules``/``rooms``/``participants`` for the List*/Get* calls, and
    UpdateParticipant changing the participant kept in ``participants``. ``regions`` is
    what ``/settings/regions`` lists (none by default) and ``region_requests`` records
    when each region fetch arrived.
    """

    def __init__(
        self,
        api_key: str = "APIloopback",
        api_secret: str = "loopback-secret-long-enough-for-hs256-jwt",
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.requests: list[RecordedRequest] = []
        self.inbound_trunks: list[sip.SIPInboundTrunkInfo] = []
        self.outbound_trunks: list[sip.SIPOutboundTrunkInfo] = []
        self.dispatch_rules: list[sip.SIPDispatchRuleInfo] = []
        self.rooms: list[models.Room] = []
        self.participants: dict[str, list[models.ParticipantInfo]] = {}  # by room name
        self.regions: list[Region] = []
        self.region_requests: list[float] = []  # time.monotonic() of each region fetch
        self._verifier = api.TokenVerifier(api_key, api_secret)
        self._scripted: defaultdict[str, deque[Reply | Responder]] = defaultdict(deque)
        self._awaited: defaultdict[str, int] = defaultdict(int)
        self._arrived = asyncio.Condition()
        self._closing = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._url = ""

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``LIVEKIT_URL`` or ``LiveKitAPI(url=...)``."""
        if not self._url:
            raise RuntimeError("LoopbackLiveKit is not running; use `async with`")
        return self._url

    def env(self) -> dict[str, str]:
        """The LIVEKIT_* variables pointing a client here (for monkeypatch.setenv)."""
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }

    def api_client(self, url: str | None = None, **options: Any) -> api.LiveKitAPI:
        """A real client with the right credentials; close it (``async with``) after use.
        ``url`` overrides :attr:`url` (e.g. a Cloud host name for it); ``options`` go to
        ``LiveKitAPI`` (``failover=False``, ``timeout=...``)."""
        return api.LiveKitAPI(
            url=url or self.url, api_key=self.api_key, api_secret=self.api_secret, **options
        )

    def respond(self, method: str, *replies: Reply | Responder) -> None:
        """Queue replies for ``method``, one per request: a response message (200), an
        ErrorReply, Hang(), Drop(), a RawReply, or an async callable
        ``(RecordedRequest) -> reply``."""
        expected = _METHODS[method].response_type
        for reply in replies:
            if isinstance(reply, Message) and not isinstance(reply, expected):
                raise TypeError(f"{method} answers {expected.__name__}, not {type(reply)}")
        self._scripted[method].extend(replies)

    def requests_for(self, method: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method]

    async def wait_for_request(
        self,
        method: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test wants a bounded wait, not asyncio.timeout
    ) -> RecordedRequest:
        """The next ``method`` request not yet returned by this call, waiting if needed:
        one already received counts, so there is no race with the code under test."""
        index = self._awaited[method]
        self._awaited[method] += 1
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests_for(method)) > index)
        return self.requests_for(method)[index]

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gives up cancels its (maybe hanging) handler.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self._url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # release Hang() requests before shutting down
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # Order as in livekit-server: auth middleware, Twirp routing, decoding, grants.
        claims: Claims | None = None
        if header := request.headers.get("Authorization", ""):
            if not header.startswith("Bearer "):
                return web.Response(status=401, text="invalid authorization header")
            try:
                claims = self._verifier.verify(header.removeprefix("Bearer "))
            except Exception as e:  # any PyJWT failure: signature, issuer (key), expiry
                return web.Response(status=401, text=f"invalid token: {e}")
        if request.path == "/settings/regions" and request.method == "GET":
            return self._regions(claims)
        path = request.path.split("/")
        spec = _METHODS.get(path[-1])
        if (
            spec is None
            or request.method != "POST"
            or path != ["", "twirp", f"livekit.{spec.service}", path[-1]]
        ):
            return twirp_error("bad_route", f"no handler for path {request.path}").to_response()
        try:
            message = spec.request_type.FromString(await request.read())
        except DecodeError:
            return twirp_error("malformed", "the request could not be decoded").to_response()
        if claims is None or not spec.allowed(claims, message):
            return twirp_error("unauthenticated", "permissions denied").to_response()

        recorded = RecordedRequest(
            spec.service, path[-1], message, claims, time.monotonic(),
            request.headers.get("X-Livekit-Request-Id", ""),
        )  # fmt: skip
        async with self._arrived:
            self.requests.append(recorded)
            self._arrived.notify_all()
        queue = self._scripted[recorded.method]
        scripted = queue.popleft() if queue else self._default(recorded.method, message)
        reply = await scripted(recorded) if callable(scripted) else scripted
        if isinstance(reply, Hang):
            await self._closing.wait()
            reply = twirp_error("unavailable", "loopback server closed")
        if isinstance(reply, Drop):
            assert request.transport is not None
            request.transport.abort()  # no response; connection_lost cancels this handler
            await self._closing.wait()
            return web.Response(status=503)  # unreachable unless the server closes first
        if isinstance(reply, ErrorReply | RawReply):
            return reply.to_response()
        if not isinstance(reply, spec.response_type):
            msg = f"scripted {type(reply).__name__}, expected {spec.response_type.__name__}"
            return twirp_error("internal", msg).to_response()
        return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")

    def _regions(self, claims: Claims | None) -> web.Response:
        """LiveKit Cloud's region list; like the Cloud endpoint it wants a valid token
        (livekit-api forwards the call's own). No Cache-Control: livekit-api's process-wide
        region cache then keeps nothing between requests (or tests)."""
        if claims is None:
            return web.Response(status=401, text="missing authorization")
        self.region_requests.append(time.monotonic())
        regions = [{"region": r.region, "url": r.url, "distance": r.distance} for r in self.regions]
        return web.Response(text=json.dumps({"regions": regions}), content_type="application/json")

    def _default(self, method: str, msg: Any) -> Reply:
        match method:
            case "CreateSIPParticipant":
                n = next(self._ids)
                return sip.SIPParticipantInfo(
                    participant_id=f"PA_loopback{n}",
                    participant_identity=msg.participant_identity,
                    room_name=msg.room_name,
                    sip_call_id=f"SCL_loopback{n}",
                )
            case "ListSIPInboundTrunk":
                items = _pick(self.inbound_trunks, msg.trunk_ids, "sip_trunk_id")
                return sip.ListSIPInboundTrunkResponse(items=items)
            case "ListSIPOutboundTrunk":
                items = _pick(self.outbound_trunks, msg.trunk_ids, "sip_trunk_id")
                return sip.ListSIPOutboundTrunkResponse(items=items)
            case "ListSIPDispatchRule":
                rules = _pick(self.dispatch_rules, msg.dispatch_rule_ids, "sip_dispatch_rule_id")
                return sip.ListSIPDispatchRuleResponse(items=rules)
            case "ListRooms":
                return room.ListRoomsResponse(rooms=_pick(self.rooms, msg.names, "name"))
            case "ListParticipants":
                return room.ListParticipantsResponse(
                    participants=self.participants.get(msg.room, [])
                )
            case "GetParticipant":
                found = _pick(self.participants.get(msg.room, []), [msg.identity], "identity")
                return found[0] if found else twirp_error("not_found", "participant not found")
            case "UpdateParticipant":
                return self._update_participant(msg)
            case _:  # TransferSIPParticipant, DeleteRoom, RemoveParticipant, UpdateSubscriptions
                return _METHODS[method].response_type()

    def _update_participant(self, msg: room.UpdateParticipantRequest) -> Reply:
        """As livekit-server's UpdateParticipant: a permission given replaces the whole
        grant (``SetPermission``); a name or metadata given replaces it (empty ones are
        left alone); attributes are merged. Answers the participant as it now is."""
        found = _pick(self.participants.get(msg.room, []), [msg.identity], "identity")
        if not found:
            return twirp_error("not_found", "participant not found")
        participant = found[0]
        if msg.HasField("permission"):
            participant.permission.CopyFrom(msg.permission)
        if msg.name:
            participant.name = msg.name
        if msg.metadata:
            participant.metadata = msg.metadata
        participant.attributes.update(msg.attributes)
        return participant
