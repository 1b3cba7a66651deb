"""The loopback LiveKit server, driven by the real livekit-api client over 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.empty_pb2 import Empty
from livekit import api
from livekit.api.twirp_client import TwirpClient

from tests.support.livekit_server import (
    Hang,
    LoopbackLiveKit,
    RecordedRequest,
    sip_error,
    twirp_error,
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
