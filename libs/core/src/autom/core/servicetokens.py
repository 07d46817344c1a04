"""A service's own short-lived token: obtained from definitions with its credential, refreshed.

Only the definitions service can sign tokens. Another service presents its bootstrap
credential (AUTOM_SERVICE_CREDENTIAL) to `IssueServiceToken` and gets a token of minutes;
it asks for the next one once half of that lifetime has passed, and keeps using the current
one while definitions cannot be reached and it is still valid.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc

from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.core.grpcserver import channel
from autom.core.grpctls import GrpcTls

log = logging.getLogger(__name__)


class ServiceTokens:
    """A TokenProvider for `channel()`: the service's token, refreshed before it expires."""

    def __init__(
        self,
        definitions_addr: str,
        credential: str,
        *,
        tls: GrpcTls | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._addr = definitions_addr
        self._credential = credential
        self._tls = tls
        self._timeout = timeout_s
        self._clock = clock
        self._token = ""
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self._channel: grpc.aio.Channel | None = None
        # How many tokens were obtained (for tests and logs).
        self.issued = 0

    async def token(self) -> str:
        """A valid token, refreshed once half its lifetime has passed."""
        if self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._clock() >= self._refresh_at:
                await self._refresh()
            return self._token

    async def _refresh(self) -> None:
        if self._channel is None:
            # Its own channel: the credential goes to IssueServiceToken and nowhere else.
            self._channel = channel(self._addr, self._credential, self._tls)
        stub = pb_grpc.DefinitionsServiceStub(self._channel)
        try:
            reply = await stub.IssueServiceToken(
                pb.IssueServiceTokenRequest(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            if self._clock() < self._expires_at:
                log.warning(
                    "could not refresh the service token (%s); using the current one until it"
                    " expires",
                    err.code().name,
                )
                # Try again soon, not on every call.
                self._refresh_at = min(self._expires_at, self._clock() + 1.0)
                return
            # The caller sees definitions' own status (UNAVAILABLE while it is down).
            raise
        now = self._clock()
        expires_at = float(reply.expire_time.seconds)
        self._token = reply.token
        self._expires_at = expires_at
        self._refresh_at = now + max(0.0, expires_at - now) / 2
        self.issued += 1

    async def close(self) -> None:
        """Close the channel to definitions."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
