"""The websocket server: token check at the handshake, metadata first, then one answer per observation."""

import asyncio
import hmac
import http
import logging
import time

import websockets.asyncio.server as ws_server
import websockets.exceptions
import websockets.frames

from . import protocol

log = logging.getLogger("sinew_policy_server")


def _token_of(request) -> str | None:
    value = request.headers.get("Authorization")
    if not value:
        return None
    for scheme in ("Bearer ", "Api-Key "):
        if value.startswith(scheme):
            return value[len(scheme):].strip()
    return None


class PolicyServer:
    """Serves `policy` (an object with `infer(obs: dict) -> dict` holding `actions`, and optionally `reset()`
    and `metadata`) on host:port. Connections without the token are refused at the handshake with 401."""

    def __init__(self, policy, host: str, port: int, token: str | None, max_message_bytes: int = 64 << 20,
                 ssl_context=None):
        self.ssl_context = ssl_context
        self.policy = policy
        self.host = host
        self.port = port
        self.token = token
        self.max_message_bytes = max_message_bytes

    def _check(self, connection, request):
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if self.token is not None:
            given = _token_of(request)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                log.warning("refused a connection from %s: wrong or missing token", connection.remote_address)
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "a valid token is required\n")
        return None

    async def _handle(self, websocket):
        log.info("connection from %s", websocket.remote_address)
        if hasattr(self.policy, "reset"):
            self.policy.reset()
        metadata = dict(getattr(self.policy, "metadata", {}) or {})
        await websocket.send(protocol.packb(metadata))
        previous_total = None
        while True:
            try:
                message = await websocket.recv()
            except websockets.exceptions.ConnectionClosed:
                log.info("connection from %s closed", websocket.remote_address)
                return
            start = time.monotonic()
            try:
                if isinstance(message, str):
                    raise ValueError("observations come as a binary msgpack frame, not text")
                observation = protocol.unpackb(message, self.max_message_bytes)
                if not isinstance(observation, dict):
                    raise ValueError("observations come as a msgpack map")
                infer_start = time.monotonic()
                result = dict(self.policy.infer(observation))
                timing = {"infer_ms": (time.monotonic() - infer_start) * 1000}
                if previous_total is not None:
                    timing["prev_total_ms"] = previous_total * 1000
                result["server_timing"] = timing
                await websocket.send(protocol.packb(result))
                previous_total = time.monotonic() - start
            except websockets.exceptions.ConnectionClosed:
                return
            except Exception as error:  # the client hears what went wrong, then the connection ends
                log.exception("inference failed")
                await websocket.send(f"{type(error).__name__}: {error}")
                await websocket.close(code=websockets.frames.CloseCode.INTERNAL_ERROR, reason="inference failed")
                return

    async def serve(self, ready=None):
        async with ws_server.serve(
            self._handle, self.host, self.port, compression=None, max_size=self.max_message_bytes,
            process_request=self._check, ssl=self.ssl_context,
        ) as server:
            if ready is not None:
                ready(server)
            await server.serve_forever()

    def serve_forever(self, ready=None):
        asyncio.run(self.serve(ready))
