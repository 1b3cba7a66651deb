"""The LiveKit server requests one call makes: one request per action, bounded teardown.

livekit-api replays a request that fails with a transport error or an HTTP 5xx when the
server is a LiveKit Cloud host (``*.livekit.cloud``): up to three attempts against other
regions. For a read that is harmless; for a REFER or a dial it is not: one tool call could
transfer a caller three times or ring a supervisor's phone three times, and keep the caller
waiting for all of them. So every request of a call goes through one client built with
failover off; a failure surfaces at once and the tool decides what it means.

Teardown (ending a dialed leg, deleting the room) is bounded: it runs while a caller waits
or a job is on its way out, and a server that does not answer must not keep either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from livekit import api
from livekit.protocol import models, room, sip

from config import Destination, Settings
from tools.outcomes import classify

logger = logging.getLogger("phone-assistant.server")

# RemoveParticipant and DeleteRoom answer in milliseconds; past this the server is not
# going to answer in a useful time, and the job must not wait on it.
TEARDOWN_TIMEOUT_S = 3.0

_T = TypeVar("_T")


class CallServer:
    """The server side of one call: its room, and a client that never replays a request."""

    def __init__(self, url: str, api_key: str, api_secret: str, room_name: str) -> None:
        self.room_name = room_name
        self._api = api.LiveKitAPI(url=url, api_key=api_key, api_secret=api_secret, failover=False)

    @classmethod
    def from_settings(cls, settings: Settings, room_name: str) -> CallServer | None:
        """The call's server, or None without LiveKit credentials (console mode)."""
        secrets = settings.secrets
        if not (secrets.livekit_url and secrets.livekit_api_key and secrets.livekit_api_secret):
            return None
        return cls(
            secrets.livekit_url, secrets.livekit_api_key, secrets.livekit_api_secret, room_name
        )

    async def aclose(self) -> None:
        await self._api.aclose()

    def refer_request(
        self, identity: str, destination: Destination
    ) -> sip.TransferSIPParticipantRequest:
        """The REFER that hands participant ``identity`` over to ``destination``."""
        return sip.TransferSIPParticipantRequest(
            room_name=self.room_name,
            participant_identity=identity,
            transfer_to=destination.transfer_to,
            play_dialtone=destination.play_dialtone,
            headers=dict(destination.headers),
            ringing_timeout=Duration(seconds=round(destination.ringing_timeout)),
        )

    async def transfer(
        self, request: sip.TransferSIPParticipantRequest
    ) -> sip.TransferSIPParticipantResponse:
        """One SIP REFER; the client's timeout outlasts the ringing window."""
        return await self._api.sip.transfer_sip_participant(request)

    async def dial(self, request: sip.CreateSIPParticipantRequest) -> sip.SIPParticipantInfo:
        """One outbound call into this room."""
        return await self._api.sip.create_sip_participant(request)

    async def remove(self, identity: str) -> bool:
        """End one participant's leg (also a leg still ringing). True when it is gone,
        including when the server no longer knew it."""
        request = room.RoomParticipantIdentity(room=self.room_name, identity=identity)
        try:
            async with asyncio.timeout(TEARDOWN_TIMEOUT_S):
                await self._api.room.remove_participant(request)
        except api.TwirpError as error:
            if error.code == api.TwirpErrorCode.NOT_FOUND:
                return True
            logger.error("could not end %s's leg: %s", identity, classify(error).detail)
            return False
        except Exception as error:
            logger.error("could not end %s's leg: %s", identity, classify(error).detail)
            return False
        return True

    # -- who hears whom (tools/warm_transfer/hearing.py): bounded like teardown, since a
    # caller waits on hold meanwhile; a failure is logged and answered with None / False.

    async def participant(self, identity: str) -> models.ParticipantInfo | None:
        """GetParticipant: what the server knows of ``identity`` (its permission)."""
        request = room.RoomParticipantIdentity(room=self.room_name, identity=identity)
        return await self._bounded(f"read {identity}", self._api.room.get_participant(request))

    async def set_permission(self, identity: str, permission: models.ParticipantPermission) -> bool:
        """UpdateParticipant with ``permission``, which replaces the whole grant: pass a
        copy of the current one (``participant``) with only what should change changed."""
        request = room.UpdateParticipantRequest(
            room=self.room_name, identity=identity, permission=permission
        )
        done = await self._bounded(
            f"change {identity}'s permission", self._api.room.update_participant(request)
        )
        return done is not None

    async def subscribe(self, identity: str, track_sids: list[str], *, subscribe: bool) -> bool:
        """UpdateSubscriptions: subscribe ``identity`` to the tracks, or take them away."""
        request = room.UpdateSubscriptionsRequest(
            room=self.room_name, identity=identity, track_sids=track_sids, subscribe=subscribe
        )
        what = f"{'subscribe' if subscribe else 'unsubscribe'} {identity}"
        done = await self._bounded(what, self._api.room.update_subscriptions(request))
        return done is not None

    async def _bounded(self, what: str, request: Awaitable[_T]) -> _T | None:
        try:
            async with asyncio.timeout(TEARDOWN_TIMEOUT_S):
                return await request
        except Exception as error:
            logger.error("could not %s: %s", what, classify(error).detail)
            return None

    async def delete_room(self) -> bool:
        """Delete the room: everyone in it is disconnected, phone legs are hung up."""
        try:
            async with asyncio.timeout(TEARDOWN_TIMEOUT_S):
                await self._api.room.delete_room(room.DeleteRoomRequest(room=self.room_name))
        except api.TwirpError as error:
            if error.code == api.TwirpErrorCode.NOT_FOUND:
                return True
            grant = " The API key needs the roomCreate grant" if error.status in (401, 403) else ""
            logger.error(
                "could not delete room %s: %s.%s", self.room_name, classify(error).detail, grant
            )
            return False
        except Exception as error:
            logger.error("could not delete room %s: %s", self.room_name, classify(error).detail)
            return False
        return True
