"""The loopback LiveKit server, driven by the real livekit-api client over 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import DecodeError
from livekit import api
from livekit.agents.utils import http_context
from livekit.api.twirp_client import TwirpClient

from tests.support.cloud_host import cloud_host, resolve_to_loopback, with_host
from tests.support.livekit_server import (
    Drop,
    Hang,
    LoopbackLiveKit,
    RawReply,
    RecordedRequest,
    Region,
    plain_error,
    proxy_error,
    sip_error,
    twirp_error,
    undecodable,
)

ROOM = "call-room"
CALLER = "sip_caller"


@pytest.fixture
async def server() -> AsyncIterator[LoopbackLiveKit]:
    async with LoopbackLiveKit() as srv:
        yield srv


@pytest.fixture
async def lk(server: LoopbackLiveKit) -> AsyncIterator[api.LiveKitAPI]:
    async with server.api_client() as client:
        yield client


def transfer_request(**overrides: object) -> api.TransferSIPParticipantRequest:
    fields: dict[str, object] = {
        "participant_identity": CALLER,
        "room_name": ROOM,
        "transfer_to": "tel:+15550100",
    }
    return api.TransferSIPParticipantRequest(**(fields | overrides))


def create_request(**overrides: object) -> api.CreateSIPParticipantRequest:
    fields: dict[str, object] = {
        "sip_trunk_id": "ST_out",
        "sip_call_to": "+15550199",
        "room_name": ROOM,
        "participant_identity": "human_agent",
    }
    return api.CreateSIPParticipantRequest(**(fields | overrides))


async def test_transfer_success_decodes_the_request(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    request = transfer_request(play_dialtone=True, headers={"X-Reason": "billing"})

    response = await lk.sip.transfer_sip_participant(request)

    assert response == api.TransferSIPParticipantResponse()
    [recorded] = server.requests_for("TransferSIPParticipant")
    assert (recorded.service, recorded.method) == ("SIP", "TransferSIPParticipant")
    assert recorded.message.participant_identity == CALLER
    assert recorded.message.room_name == ROOM
    assert recorded.message.transfer_to == "tel:+15550100"
    assert recorded.message.play_dialtone is True
    assert dict(recorded.message.headers) == {"X-Reason": "billing"}
    # The client pins the ring window it assumed when the caller left it unset.
    assert recorded.message.ringing_timeout.seconds == 30
    assert recorded.claims.sip == api.SIPGrants(call=True)
    video = recorded.claims.video
    assert video is not None
    assert (video.room_admin, video.room) == (True, ROOM)


async def test_sip_error_surfaces_as_sip_call_error(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    server.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))

    with pytest.raises(api.SipCallError) as caught:
        await lk.sip.transfer_sip_participant(transfer_request())

    assert caught.value.sip_status_code == 486
    assert caught.value.sip_status == "Busy Here"
    assert caught.value.code == "resource_exhausted"  # as livekit-server maps 486
    assert caught.value.status == 429
    assert caught.value.message == "sip status 486: Busy Here"


async def test_transfer_reason_meta_surfaces_as_sip_call_error(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    reply = twirp_error("deadline_exceeded", meta={"sip_transfer_reason": "STR_RINGING_TIMEOUT"})
    server.respond("TransferSIPParticipant", reply)

    with pytest.raises(api.SipCallError) as caught:
        await lk.sip.transfer_sip_participant(transfer_request())

    assert caught.value.sip_transfer_reason == "STR_RINGING_TIMEOUT"
    assert caught.value.sip_status_code is None
    assert caught.value.status == 408


async def test_error_without_sip_meta_is_a_plain_server_error(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    server.respond("TransferSIPParticipant", twirp_error("permission_denied", "not allowed"))

    with pytest.raises(api.ServerError) as caught:
        await lk.sip.transfer_sip_participant(transfer_request())

    assert not isinstance(caught.value, api.SipCallError)
    assert (caught.value.code, caught.value.message) == ("permission_denied", "not allowed")
    assert caught.value.status == 403
    assert caught.value.metadata == {}


@pytest.mark.parametrize(
    ("api_key", "api_secret"),
    [
        ("APIloopback", "a-different-secret-that-is-long-enough-for-hs256"),
        ("APIsomeoneelse", "loopback-secret-long-enough-for-hs256-jwt"),
    ],
    ids=["wrong-secret", "wrong-key"],
)
async def test_bad_credentials_get_401(
    server: LoopbackLiveKit, api_key: str, api_secret: str
) -> None:
    async with api.LiveKitAPI(url=server.url, api_key=api_key, api_secret=api_secret) as bad:
        with pytest.raises(api.ServerError) as caught:
            await bad.room.list_rooms(api.ListRoomsRequest())

    # Like livekit-server: a plain-text 401, which the client reports as code "unknown".
    assert caught.value.status == 401
    assert caught.value.code == "unknown"
    assert server.requests == []


def token(server: LoopbackLiveKit, video: api.VideoGrants, sip: api.SIPGrants | None) -> str:
    tok = api.AccessToken(server.api_key, server.api_secret).with_grants(video)
    return (tok.with_sip_grants(sip) if sip else tok).to_jwt()


@pytest.mark.parametrize(
    ("video", "sip"),
    [
        (api.VideoGrants(room_admin=True, room=ROOM), None),
        (api.VideoGrants(), api.SIPGrants(call=True)),
        (api.VideoGrants(room_admin=True, room="another-room"), api.SIPGrants(call=True)),
        (api.VideoGrants(room_admin=True, room=ROOM), api.SIPGrants(admin=True)),
    ],
    ids=["no-sip-call", "no-room-admin", "admin-of-other-room", "sip-admin-not-call"],
)
async def test_missing_grant_is_rejected(
    server: LoopbackLiveKit, video: api.VideoGrants, sip: api.SIPGrants | None
) -> None:
    async with api.LiveKitAPI.with_token(token(server, video, sip), url=server.url) as client:
        with pytest.raises(api.ServerError) as caught:
            await client.sip.transfer_sip_participant(transfer_request())

    # livekit-server wraps a failed permission check as Twirp "unauthenticated".
    assert (caught.value.code, caught.value.message) == ("unauthenticated", "permissions denied")
    assert caught.value.status == 401
    assert server.requests == []


async def test_no_authorization_header_is_rejected(server: LoopbackLiveKit) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/twirp/livekit.RoomService/ListRooms",
            data=api.ListRoomsRequest().SerializeToString(),
            headers={"Content-Type": "application/protobuf"},
        ) as resp,
    ):
        assert resp.status == 401
        assert await resp.json() == {"code": "unauthenticated", "msg": "permissions denied"}


async def test_every_method_accepts_the_grants_the_client_signs(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    """The grant table is exactly what livekit-api puts in its tokens, call by call."""
    server.participants[ROOM] = [api.ParticipantInfo(identity=CALLER)]

    await lk.sip.create_sip_participant(create_request())
    await lk.sip.transfer_sip_participant(transfer_request())
    await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
    await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    await lk.room.list_rooms(api.ListRoomsRequest())
    await lk.room.list_participants(api.ListParticipantsRequest(room=ROOM))
    await lk.room.get_participant(api.RoomParticipantIdentity(room=ROOM, identity=CALLER))
    await lk.room.remove_participant(api.RoomParticipantIdentity(room=ROOM, identity=CALLER))
    await lk.room.delete_room(api.DeleteRoomRequest(room=ROOM))

    assert [r.method for r in server.requests] == [
        "CreateSIPParticipant",
        "TransferSIPParticipant",
        "ListSIPInboundTrunk",
        "ListSIPOutboundTrunk",
        "ListSIPDispatchRule",
        "ListRooms",
        "ListParticipants",
        "GetParticipant",
        "RemoveParticipant",
        "DeleteRoom",
    ]


async def test_unknown_method_is_bad_route(server: LoopbackLiveKit, lk: api.LiveKitAPI) -> None:
    twirp = TwirpClient(lk._session, server.url, "livekit")  # the client's own transport
    headers = lk.sip._auth_header(api.VideoGrants(), sip=api.SIPGrants(admin=True))

    with pytest.raises(api.ServerError) as caught:
        await twirp.request("SIP", "NoSuchMethod", Empty(), headers, Empty)

    assert (caught.value.code, caught.value.status) == ("bad_route", 404)
    assert server.requests == []


async def test_scripted_replies_are_used_in_order_then_the_default(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    scripted = api.SIPParticipantInfo(participant_id="PA_scripted", sip_call_id="SCL_scripted")
    server.respond("CreateSIPParticipant", scripted, sip_error(480, "Temporarily Unavailable"))

    first = await lk.sip.create_sip_participant(create_request())
    with pytest.raises(api.SipCallError) as caught:
        await lk.sip.create_sip_participant(create_request())
    third = await lk.sip.create_sip_participant(create_request(participant_identity="other"))

    assert first == scripted
    assert caught.value.sip_status_code == 480
    assert third.participant_identity == "other"
    assert third.room_name == ROOM
    assert third.participant_id.startswith("PA_")
    assert third.sip_call_id.startswith("SCL_")


def test_respond_rejects_a_message_of_the_wrong_type() -> None:
    server = LoopbackLiveKit()
    with pytest.raises(TypeError):
        server.respond("TransferSIPParticipant", api.SIPParticipantInfo())
    with pytest.raises(KeyError):
        server.respond("NoSuchMethod", api.SIPParticipantInfo())


async def test_hang_until_the_client_times_out(server: LoopbackLiveKit, lk: api.LiveKitAPI) -> None:
    server.respond("CreateSIPParticipant", Hang())

    # Without wait_until_answered the client honours a short timeout as given.
    with pytest.raises(asyncio.TimeoutError):
        await lk.sip.create_sip_participant(create_request(), timeout=0.2)

    assert len(server.requests_for("CreateSIPParticipant")) == 1


async def test_hang_is_released_when_the_server_closes() -> None:
    server = LoopbackLiveKit()
    async with server:
        client = server.api_client()
        server.respond("TransferSIPParticipant", Hang())
        call = asyncio.create_task(client.sip.transfer_sip_participant(transfer_request()))
        await server.wait_for_request("TransferSIPParticipant")
        assert not call.done()

    with pytest.raises(api.ServerError) as caught:
        await call
    await client.aclose()
    assert (caught.value.code, caught.value.status) == ("unavailable", 503)


async def test_async_responder_answers_when_the_test_says_so(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    answered = asyncio.Event()
    seen: list[RecordedRequest] = []

    async def ring_then_answer(request: RecordedRequest) -> api.SIPParticipantInfo:
        seen.append(request)
        await answered.wait()
        return api.SIPParticipantInfo(
            participant_identity=request.message.participant_identity, sip_call_id="SCL_1"
        )

    server.respond("CreateSIPParticipant", ring_then_answer)
    request = create_request(wait_until_answered=True, ringing_timeout=Duration(seconds=1))
    call = asyncio.create_task(lk.sip.create_sip_participant(request))

    recorded = await server.wait_for_request("CreateSIPParticipant")
    assert recorded.message.wait_until_answered
    assert not call.done()
    answered.set()

    info = await call
    assert (info.participant_identity, info.sip_call_id) == ("human_agent", "SCL_1")
    assert seen == [recorded]


async def test_list_calls_return_the_stored_resources(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    inbound = [api.SIPInboundTrunkInfo(sip_trunk_id=f"ST_in{i}", numbers=["+1555"]) for i in (1, 2)]
    outbound = api.SIPOutboundTrunkInfo(sip_trunk_id="ST_out", address="sip.example.com")
    rule = api.SIPDispatchRuleInfo(sip_dispatch_rule_id="SDR_1", trunk_ids=["ST_in1"])
    server.inbound_trunks.extend(inbound)
    server.outbound_trunks.append(outbound)
    server.dispatch_rules.append(rule)
    server.rooms.extend([api.Room(name=ROOM), api.Room(name="other")])

    all_inbound = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    one_inbound = await lk.sip.list_inbound_trunk(
        api.ListSIPInboundTrunkRequest(trunk_ids=["ST_in2"])
    )
    outbound_list = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
    rules = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[ROOM]))

    assert list(all_inbound.items) == inbound
    assert list(one_inbound.items) == [inbound[1]]
    assert list(outbound_list.items) == [outbound]
    assert list(rules.items) == [rule]
    assert [r.name for r in rooms.rooms] == [ROOM]


async def test_get_participant_defaults_to_not_found(lk: api.LiveKitAPI) -> None:
    with pytest.raises(api.ServerError) as caught:
        await lk.room.get_participant(api.RoomParticipantIdentity(room=ROOM, identity="ghost"))

    assert (caught.value.code, caught.value.status) == ("not_found", 404)


async def test_wait_for_request_returns_each_request_once_in_order(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    await lk.room.delete_room(api.DeleteRoomRequest(room="first"))  # arrives before the wait

    assert (await server.wait_for_request("DeleteRoom")).message.room == "first"
    waiting = asyncio.create_task(server.wait_for_request("DeleteRoom"))
    await lk.room.delete_room(api.DeleteRoomRequest(room="second"))
    assert (await waiting).message.room == "second"
    with pytest.raises(TimeoutError):
        await server.wait_for_request("DeleteRoom", timeout=0.05)


async def test_env_points_a_default_client_here(
    server: LoopbackLiveKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    server.rooms.append(api.Room(name=ROOM))

    async with api.LiveKitAPI() as client:
        rooms = await client.room.list_rooms(api.ListRoomsRequest())

    assert [r.name for r in rooms.rooms] == [ROOM]
    assert server.requests[0].received_at > 0


# -- what sits in front of a server: proxies, broken replies, dropped connections ---------


async def test_a_proxy_html_504_is_a_server_error_with_code_unknown(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    server.respond("TransferSIPParticipant", proxy_error(504))

    with pytest.raises(api.ServerError) as caught:
        await lk.sip.transfer_sip_participant(transfer_request())

    # The HTML is not Twirp JSON: no code, no message, no meta, so no SipCallError.
    assert type(caught.value) is api.ServerError
    assert (caught.value.code, caught.value.message, caught.value.status) == ("unknown", "", 504)
    assert caught.value.metadata == {}


@pytest.mark.parametrize(
    "reply",
    [plain_error(502, "Bad Gateway"), plain_error(503, "Service Unavailable"), proxy_error(502)],
    ids=["502-text", "503-text", "502-html"],
)
async def test_other_non_twirp_5xx_bodies_map_the_same_way(
    server: LoopbackLiveKit, lk: api.LiveKitAPI, reply: RawReply
) -> None:
    server.respond("CreateSIPParticipant", reply)

    with pytest.raises(api.ServerError) as caught:
        await lk.sip.create_sip_participant(create_request())

    assert type(caught.value) is api.ServerError
    assert (caught.value.code, caught.value.message) == ("unknown", "")
    assert caught.value.status == reply.status


async def test_a_200_that_is_not_the_protobuf_raises_decode_error(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    server.respond("TransferSIPParticipant", undecodable())
    server.respond("CreateSIPParticipant", undecodable(b"<html><body>captive</body></html>"))

    # Unwrapped: neither a ServerError nor an aiohttp error.
    with pytest.raises(DecodeError, match="TransferSIPParticipantResponse"):
        await lk.sip.transfer_sip_participant(transfer_request())
    with pytest.raises(DecodeError, match="SIPParticipantInfo"):
        await lk.sip.create_sip_participant(create_request())


async def test_a_200_with_an_empty_body_is_an_empty_success(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    server.respond("TransferSIPParticipant", RawReply(200, b"", "application/protobuf"))
    server.respond("CreateSIPParticipant", RawReply(200, b"", "text/html"))

    # proto3 decodes nothing as the empty message, whatever the content type says.
    assert await lk.sip.transfer_sip_participant(transfer_request()) == (
        api.TransferSIPParticipantResponse()
    )
    assert await lk.sip.create_sip_participant(create_request()) == api.SIPParticipantInfo()


async def test_a_dropped_connection_raises_server_disconnected(
    server: LoopbackLiveKit, lk: api.LiveKitAPI
) -> None:
    server.respond("TransferSIPParticipant", Drop())

    with pytest.raises(aiohttp.ServerDisconnectedError) as caught:
        await lk.sip.transfer_sip_participant(transfer_request())

    assert isinstance(caught.value, aiohttp.ClientError)
    assert len(server.requests_for("TransferSIPParticipant")) == 1  # the server had it
    # The client's connection pool recovers: the next call goes through.
    await lk.sip.transfer_sip_participant(transfer_request())


async def test_settings_regions_lists_the_configured_regions(server: LoopbackLiveKit) -> None:
    headers = {"Authorization": f"Bearer {token(server, api.VideoGrants(), None)}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/settings/regions", headers=headers) as resp:
            assert resp.status == 200
            assert await resp.json() == {"regions": []}
        server.regions = [Region("us-east", "wss://project-use.livekit.cloud", "120")]
        async with session.get(f"{server.url}/settings/regions", headers=headers) as resp:
            assert "Cache-Control" not in resp.headers
            assert await resp.json() == {
                "regions": [
                    {
                        "region": "us-east",
                        "url": "wss://project-use.livekit.cloud",
                        "distance": "120",
                    }
                ]
            }
        async with session.get(f"{server.url}/settings/regions") as resp:
            assert resp.status == 401
    assert len(server.region_requests) == 2


# -- LiveKit Cloud hosts: livekit-api's failover replays requests -------------------------


@pytest.fixture
def cloud_url(server: LoopbackLiveKit) -> Iterator[str]:
    with cloud_host(server.url) as url:
        yield url


@pytest.fixture
async def cloud(server: LoopbackLiveKit, cloud_url: str) -> AsyncIterator[api.LiveKitAPI]:
    """The default client, as JobContext.api builds it, against a *.livekit.cloud name."""
    async with server.api_client(cloud_url) as client:
        yield client


def ids_of(requests: list[RecordedRequest]) -> set[str]:
    return {r.request_id for r in requests}


def test_cloud_host_names_the_loopback_server(server: LoopbackLiveKit) -> None:
    assert (
        with_host("http://127.0.0.1:7880/x", "a.livekit.cloud") == "http://a.livekit.cloud:7880/x"
    )
    with resolve_to_loopback("Project.LiveKit.Cloud"):
        [info, *_] = socket.getaddrinfo("project.livekit.cloud", 80, type=socket.SOCK_STREAM)
        assert info[4][0] == "127.0.0.1"
    with pytest.raises(socket.gaierror):  # gone after the block (no network here either)
        socket.getaddrinfo("project.livekit.cloud", 80)


async def test_the_real_client_reaches_the_server_by_its_cloud_name(
    server: LoopbackLiveKit, cloud_url: str, cloud: api.LiveKitAPI
) -> None:
    server.rooms.append(api.Room(name=ROOM))

    rooms = await cloud.room.list_rooms(api.ListRoomsRequest())

    assert cloud_url.startswith("http://project.livekit.cloud:")
    assert [r.name for r in rooms.rooms] == [ROOM]
    assert server.region_requests == []  # regions are asked only after a failure


async def test_on_cloud_a_transfer_answered_503_is_sent_three_times(
    server: LoopbackLiveKit, cloud: api.LiveKitAPI
) -> None:
    unavailable = twirp_error("unavailable", "try again")
    server.respond("TransferSIPParticipant", unavailable, unavailable, unavailable)

    began = time.monotonic()
    with pytest.raises(api.ServerError) as caught:
        await cloud.sip.transfer_sip_participant(transfer_request())
    took = time.monotonic() - began

    assert (caught.value.code, caught.value.status) == ("unavailable", 503)
    sent = server.requests_for("TransferSIPParticipant")
    assert len(sent) == 3
    assert len(ids_of(sent)) == 1 and "" not in ids_of(sent)  # one idempotency key
    assert 0.6 <= took < 1.5  # backoff 0.2 s then 0.4 s
    assert sent[1].received_at - sent[0].received_at == pytest.approx(0.2, abs=0.1)
    assert sent[2].received_at - sent[1].received_at == pytest.approx(0.4, abs=0.1)
    assert len(server.region_requests) == 1  # asked once, after the first failure


async def test_on_cloud_a_replay_can_succeed(
    server: LoopbackLiveKit, cloud: api.LiveKitAPI
) -> None:
    server.respond("TransferSIPParticipant", twirp_error("unavailable"))

    assert await cloud.sip.transfer_sip_participant(transfer_request()) == (
        api.TransferSIPParticipantResponse()
    )
    assert len(server.requests_for("TransferSIPParticipant")) == 2


async def test_on_cloud_the_job_context_client_replays_too(
    server: LoopbackLiveKit, cloud_url: str
) -> None:
    """JobContext.api is ``LiveKitAPI(session=http_context.http_session())``: failover on,
    and a call with no timeout of its own takes the session's (aiohttp's default, 300 s),
    long enough to be replayed."""
    unavailable = twirp_error("unavailable")
    server.respond("RemoveParticipant", unavailable, unavailable, unavailable)
    server.respond("TransferSIPParticipant", unavailable, unavailable, unavailable)

    async with http_context.open():
        session = http_context.http_session()
        assert session.timeout.total == 300
        client = server.api_client(cloud_url, session=session)
        with pytest.raises(api.ServerError):
            await client.room.remove_participant(
                api.RoomParticipantIdentity(room=ROOM, identity=CALLER)
            )
        with pytest.raises(api.ServerError):
            await client.sip.transfer_sip_participant(transfer_request())
        await client.aclose()

    assert len(server.requests_for("RemoveParticipant")) == 3
    assert len(server.requests_for("TransferSIPParticipant")) == 3


async def test_on_cloud_failover_false_sends_once(server: LoopbackLiveKit, cloud_url: str) -> None:
    server.respond("TransferSIPParticipant", twirp_error("unavailable"))

    async with server.api_client(cloud_url, failover=False) as client:
        with pytest.raises(api.ServerError) as caught:
            await client.sip.transfer_sip_participant(transfer_request())

    assert caught.value.status == 503
    assert len(server.requests_for("TransferSIPParticipant")) == 1
    assert server.region_requests == []


@pytest.mark.parametrize(
    ("reply", "raised"),
    [
        (Drop(), aiohttp.ServerDisconnectedError),
        (proxy_error(504), api.ServerError),
        (plain_error(502), api.ServerError),
    ],
    ids=["dropped", "504-html", "502-text"],
)
async def test_on_cloud_transport_errors_and_any_5xx_are_replayed(
    server: LoopbackLiveKit,
    cloud: api.LiveKitAPI,
    reply: Drop | RawReply,
    raised: type[Exception],
) -> None:
    server.respond("TransferSIPParticipant", reply, reply, reply)

    with pytest.raises(raised):
        await cloud.sip.transfer_sip_participant(transfer_request())

    assert len(server.requests_for("TransferSIPParticipant")) == 3


@pytest.mark.parametrize(
    ("reply", "raised"),
    [
        (sip_error(486, "Busy Here"), api.SipCallError),
        (twirp_error("invalid_argument", "bad number"), api.ServerError),
        (undecodable(), DecodeError),
    ],
    ids=["sip-486", "4xx", "undecodable-200"],
)
async def test_on_cloud_4xx_and_undecodable_200_are_not_replayed(
    server: LoopbackLiveKit,
    cloud: api.LiveKitAPI,
    reply: RawReply,
    raised: type[Exception],
) -> None:
    server.respond("TransferSIPParticipant", reply)

    with pytest.raises(raised):
        await cloud.sip.transfer_sip_participant(transfer_request())

    assert len(server.requests_for("TransferSIPParticipant")) == 1


async def test_on_cloud_a_request_timeout_under_5_s_is_never_replayed(
    server: LoopbackLiveKit, cloud: api.LiveKitAPI
) -> None:
    unavailable = twirp_error("unavailable")
    server.respond("CreateSIPParticipant", *[unavailable] * 4)
    server.respond("TransferSIPParticipant", unavailable)

    with pytest.raises(api.ServerError):
        await cloud.sip.create_sip_participant(create_request(), timeout=4.9)
    assert len(server.requests_for("CreateSIPParticipant")) == 1
    with pytest.raises(api.ServerError):  # 5 s is long enough to replay
        await cloud.sip.create_sip_participant(create_request(), timeout=5.0)
    assert len(server.requests_for("CreateSIPParticipant")) == 4

    # A transfer's timeout is its ring window + 2 s (at least): a 2 s ring makes it 4 s.
    short_ring = transfer_request(ringing_timeout=Duration(seconds=2))
    with pytest.raises(api.ServerError):
        await cloud.sip.transfer_sip_participant(short_ring, timeout=1.0)
    assert len(server.requests_for("TransferSIPParticipant")) == 1


async def test_on_cloud_a_timed_out_transfer_is_sent_three_times(
    server: LoopbackLiveKit, cloud: api.LiveKitAPI
) -> None:
    """Each attempt gets the whole request timeout: a 3 s ring window is a 5 s timeout
    (the shortest that fails over), so the call gives up after 3 x 5 s + backoff. aiohttp
    rounds a deadline of 5 s or more up to the next whole second of loop time
    (``ClientTimeout.ceil_threshold``), so each attempt lasts 5 to 6 s."""
    server.respond("TransferSIPParticipant", Hang(), Hang(), Hang())

    began = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await cloud.sip.transfer_sip_participant(
            transfer_request(ringing_timeout=Duration(seconds=3))
        )
    took = time.monotonic() - began

    sent = server.requests_for("TransferSIPParticipant")
    assert len(sent) == 3 and len(ids_of(sent)) == 1
    assert 15.6 <= took < 19.5


async def test_on_cloud_a_failure_goes_to_the_next_listed_region(
    server: LoopbackLiveKit, cloud: api.LiveKitAPI
) -> None:
    async with LoopbackLiveKit() as other:
        with cloud_host(other.url, "project-eu.livekit.cloud") as other_url:
            # Listed as wss like the real list; the client dials it over http(s).
            server.regions = [
                Region("us", with_host(server.url, "project.livekit.cloud")),
                Region("eu", other_url.replace("http", "ws", 1)),
            ]
            server.respond("TransferSIPParticipant", twirp_error("unavailable"))

            await cloud.sip.transfer_sip_participant(transfer_request())

    [first] = server.requests_for("TransferSIPParticipant")
    [replayed] = other.requests_for("TransferSIPParticipant")
    assert replayed.request_id == first.request_id
    assert replayed.message == first.message
