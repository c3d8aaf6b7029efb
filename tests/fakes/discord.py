"""A fake Discord, REST and gateway, on 127.0.0.1, for the real discord.py client to talk to.

The fake answers what a bot needs from Discord: login (``/users/@me``, the application), the
gateway handshake (HELLO, IDENTIFY, READY, one GUILD_CREATE, heartbeats and their ACKs),
application command sync, interaction callbacks, follow-ups and message edits. It records every
REST call so a test can assert on it, and lets a test send interactions (slash commands with
options and attachments, autocomplete, component clicks) and wait, always with a timeout, for
the bot's answer. It rejects what Discord rejects and a test would otherwise miss: an initial
response after the 3 s deadline, a second initial response, a follow-up before any response,
messages over Discord's size limits, bad autocomplete choices, unregistered commands.

discord.py is pointed at it with :func:`point_discord_py_at`, which swaps two class attributes,
``discord.http.Route.BASE`` (every REST call, webhooks included, is built from it) and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (a plain ``Client`` connects there without
asking ``/gateway/bot``). Usage::

    async with FakeDiscord() as fake, running_bot(bot, fake):
        interaction = await fake.invoke("ping")
        assert (await fake.callback(interaction)).body["type"] == 5
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import discord
import discord.gateway
import discord.http
import pytest_asyncio
import yarl
from aiohttp import BodyPartReader, WSMsgType, web

T = TypeVar("T")

API_PREFIX = "/api/v10"
TOKEN = "fake-bot-token"
APPLICATION_ID = 1100000000000000001
BOT_USER_ID = APPLICATION_ID
OWNER_ID = 1100000000000000002
MEMBER_ID = 1100000000000000003
GUILD_ID = 1100000000000000010
CHANNEL_ID = 1100000000000000011
# VIEW_CHANNEL | SEND_MESSAGES | USE_APPLICATION_COMMANDS: what an ordinary member has.
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 31)
ADMINISTRATOR = 1 << 3
EPHEMERAL = 1 << 6
LOADING = 1 << 7
DEFAULT_TIMEOUT = 5.0

_OPTION_CASTS: dict[int, Callable[[Any], Any]] = {3: str, 4: int, 5: bool, 10: float}


@dataclass(frozen=True)
class RecordedRequest:
    """One REST call the bot made; ``path`` is below ``/api/v10``."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    response: Any
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Attachment:
    """A file a member uploads as a slash-command option; the fake serves its bytes."""

    filename: str
    content: bytes
    content_type: str = "text/plain"


@dataclass
class Interaction:
    """An interaction the fake sent to the bot; its id and token find the bot's answers."""

    id: int
    token: str
    type: int
    created: float
    message_id: int | None = None
    acknowledged: bool = False


class FakeDiscord:
    """The fake server. Start it with ``async with FakeDiscord() as fake``."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        heartbeat_interval: float = 1.0,
        callback_deadline: float = 3.0,
    ) -> None:
        self.token = token
        self.heartbeat_interval = heartbeat_interval
        self.callback_deadline = callback_deadline
        self.requests: list[RecordedRequest] = []
        self.heartbeats: list[float] = []
        self.identify: dict[str, Any] | None = None
        self.gateway_queries: list[dict[str, str]] = []
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.interactions: dict[str, Interaction] = {}
        self._ids = itertools.count(1200000000000000000)
        self._attachments: dict[int, Attachment] = {}
        self._sequence = 0
        self._session_id = "fake-session"
        self._gateway: _Connection | None = None
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._bodies: dict[int, Any] = {}
        self.port = 0

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._record])
        app.add_routes(self._routes())
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._gateway is not None:
            await self._gateway.ws.close(code=1000)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    # What a test does: send interactions and gateway events.

    async def invoke(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        *,
        permissions: int = MEMBER_PERMISSIONS,
        user_id: int = MEMBER_ID,
    ) -> Interaction:
        """Run a registered slash command; ``command`` may be ``"group sub"``."""
        registered = self._find_command(command.split()[0])
        _check_permissions(registered, permissions)
        data, resolved = self._command_data(registered, command, options or {}, focused=None)
        if resolved:
            data["resolved"] = {"attachments": resolved}
        return await self._send_interaction(2, data, permissions=permissions, user_id=user_id)

    async def autocomplete(
        self, command: str, options: dict[str, Any], focused: str, *, user_id: int = MEMBER_ID
    ) -> Interaction:
        """Ask for choices while the member types ``options[focused]``."""
        registered = self._find_command(command.split()[0])
        data, _ = self._command_data(registered, command, options, focused=focused)
        return await self._send_interaction(4, data, user_id=user_id)

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        values: list[str] | None = None,
        user_id: int = MEMBER_ID,
    ) -> Interaction:
        """Press a button (or pick ``values`` in a select menu) on a message the bot sent."""
        message = self.messages[message_id]
        component = _find_component(message.get("components", []), custom_id)
        if component is None:
            raise LookupError(f"message {message_id} has no component {custom_id!r}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = values
        return await self._send_interaction(3, data, message=message, user_id=user_id)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send one gateway DISPATCH to the connected bot."""
        if self._gateway is None:
            raise RuntimeError("no bot has identified on the gateway")
        self._sequence += 1
        await self._gateway.send({"op": 0, "t": event, "s": self._sequence, "d": data})

    # What a test awaits: the bot's answers. Every wait has a timeout.

    async def wait_for_request(
        self,
        check: Callable[[RecordedRequest], bool],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        what: str = "a matching request",
    ) -> RecordedRequest:
        def find() -> RecordedRequest | None:
            return next((r for r in self.requests if check(r)), None)

        return await self._wait(find, timeout, what)

    async def callback(
        self, interaction: Interaction, *, timeout: float = DEFAULT_TIMEOUT
    ) -> RecordedRequest:
        """The bot's initial response to ``interaction``."""
        path = f"/interactions/{interaction.id}/{interaction.token}/callback"
        return await self.wait_for_request(
            lambda r: r.path == path, timeout=timeout, what=f"POST {path}"
        )

    async def followups(
        self, interaction: Interaction, count: int = 1, *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[RecordedRequest]:
        """The first ``count`` follow-up messages the bot sent for ``interaction``."""
        path = f"/webhooks/{APPLICATION_ID}/{interaction.token}"

        def find() -> list[RecordedRequest] | None:
            found = [r for r in self.requests if r.method == "POST" and r.path == path]
            return found[:count] if len(found) >= count else None

        return await self._wait(find, timeout, f"{count} POST {path}")

    async def wait_until_identified(self, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        return await self._wait(lambda: self.identify, timeout, "IDENTIFY")

    async def wait_for_heartbeats(self, count: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        await self._wait(lambda: len(self.heartbeats) >= count or None, timeout, "heartbeats")

    async def _wait(self, find: Callable[[], T | None], timeout: float, what: str) -> T:
        try:
            async with asyncio.timeout(timeout), self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
                return found
        except TimeoutError:
            seen = "\n".join(f"  {r.method} {r.path} -> {r.status}" for r in self.requests)
            raise AssertionError(f"waited {timeout}s for {what}; saw:\n{seen}") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # Interactions

    def _find_command(self, name: str) -> dict[str, Any]:
        for scope in (GUILD_ID, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name:
                    return command
        raise LookupError(f"/{name} is not registered (did the bot sync its commands?)")

    def _command_data(
        self, registered: dict[str, Any], path: str, values: dict[str, Any], focused: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        data: dict[str, Any] = {"id": registered["id"], "name": registered["name"], "type": 1}
        if registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        schema, holder = registered, data
        for name in path.split()[1:]:
            schema = next(o for o in schema.get("options", []) if o["name"] == name)
            child: dict[str, Any] = {"name": name, "type": schema["type"], "options": []}
            holder.setdefault("options", []).append(child)
            holder = child
        options, resolved = self._options(schema.get("options", []), values, focused)
        holder.setdefault("options", []).extend(options)
        return data, resolved

    def _options(
        self, schema: list[dict[str, Any]], values: dict[str, Any], focused: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        known = {o["name"]: o for o in schema}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; the command has {sorted(known)}")
        missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
        if missing and focused is None:
            raise ValueError(f"Discord would not send the command without {missing}")
        options, resolved = [], {}
        for name, value in values.items():
            kind = known[name]["type"]
            option: dict[str, Any] = {"name": name, "type": kind}
            if name == focused:
                option.update(value=str(value), focused=True)
            elif kind == 11:
                attachment_id = self._add_attachment(value)
                option["value"] = str(attachment_id)
                resolved[str(attachment_id)] = self._attachment_payload(attachment_id)
            elif kind in _OPTION_CASTS:
                option["value"] = _OPTION_CASTS[kind](value)
            else:
                raise NotImplementedError(f"option type {kind} ({name}) is not faked")
            options.append(option)
        return options, resolved

    def _add_attachment(self, attachment: Attachment) -> int:
        attachment_id = next(self._ids)
        self._attachments[attachment_id] = attachment
        return attachment_id

    def _attachment_payload(self, attachment_id: int) -> dict[str, Any]:
        attachment = self._attachments[attachment_id]
        url = f"http://127.0.0.1:{self.port}/attachments/{attachment_id}/{attachment.filename}"
        return {
            "id": str(attachment_id),
            "filename": attachment.filename,
            "size": len(attachment.content),
            "url": url,
            "proxy_url": url,
            "content_type": attachment.content_type,
        }

    async def _send_interaction(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        message: dict[str, Any] | None = None,
        permissions: int = MEMBER_PERMISSIONS,
        user_id: int = MEMBER_ID,
    ) -> Interaction:
        interaction_id = next(self._ids)
        token = f"interaction-token-{interaction_id}"
        message_id = int(message["id"]) if message else None
        self.interactions[token] = Interaction(
            interaction_id, token, kind, time.monotonic(), message_id=message_id
        )
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(APPLICATION_ID),
            "type": kind,
            "data": data,
            "guild_id": str(GUILD_ID),
            "channel_id": str(CHANNEL_ID),
            "channel": _channel(),
            "member": _member(_user(user_id), permissions),
            "token": token,
            "version": 1,
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": str(MEMBER_PERMISSIONS),
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[token]

    # REST

    def _routes(self) -> list[web.RouteDef]:
        api = API_PREFIX
        hook = api + "/webhooks/{application_id}/{token}"
        return [
            web.get("/", self._gateway_socket),
            web.get("/attachments/{attachment_id}/{filename}", self._attachment),
            web.get(api + "/gateway", self._get_gateway),
            web.get(api + "/gateway/bot", self._get_gateway),
            web.get(api + "/users/@me", self._get_user),
            web.get(api + "/oauth2/applications/@me", self._get_application),
            web.put(api + "/applications/{application_id}/commands", self._sync),
            web.put(api + "/applications/{application_id}/guilds/{guild_id}/commands", self._sync),
            web.post(api + "/interactions/{interaction_id}/{token}/callback", self._callback),
            web.post(hook, self._followup),
            web.get(hook + "/messages/{message_id}", self._get_message),
            web.patch(hook + "/messages/{message_id}", self._edit_message),
            web.delete(hook + "/messages/{message_id}", self._delete_message),
            web.post(api + "/channels/{channel_id}/messages", self._channel_message),
            web.patch(api + "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            web.delete(api + "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            web.route("*", api + "/{tail:.*}", self._unknown),
        ]

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        body, files = await _read_body(request)
        self._bodies[id(request)] = body
        path = request.path.removeprefix(API_PREFIX)
        # Interaction callbacks and webhooks are authorised by their token, not the bot's.
        needs_auth = not path.startswith(("/interactions/", "/webhooks/"))
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            response = _error(401, 0, "401: Unauthorized")
        else:
            try:
                response = await handler(request)
            finally:
                del self._bodies[id(request)]
        raw = response.body if isinstance(response, web.Response) else None
        reply = json.loads(raw) if isinstance(raw, bytes) and raw else None
        self.requests.append(
            RecordedRequest(
                request.method,
                path,
                dict(request.query),
                body,
                response.status,
                reply,
                files,
            )
        )
        await self._notify()
        return response

    def _body(self, request: web.Request) -> Any:
        return self._bodies[id(request)]

    async def _get_gateway(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _get_user(self, request: web.Request) -> web.Response:
        return _json(_user(BOT_USER_ID))

    async def _get_application(self, request: web.Request) -> web.Response:
        return _json(_application())

    async def _attachment(self, request: web.Request) -> web.Response:
        attachment = self._attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None:
            return web.Response(status=404)
        return web.Response(body=attachment.content, content_type=attachment.content_type)

    async def _unknown(self, request: web.Request) -> web.Response:
        return _error(404, 0, f"404: Not Found (the fake has no {request.method} route)")

    async def _sync(self, request: web.Request) -> web.Response:
        guild = request.match_info.get("guild_id")
        scope = int(guild) if guild else None
        problems = [p for c in self._body(request) for p in _command_problems(c)]
        if problems:
            return _invalid_form(problems)
        previous = {c["name"]: c["id"] for c in self.commands.get(scope, [])}
        registered = []
        for command in self._body(request):
            entry = {
                "type": 1,
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **command,
                "id": previous.get(command["name"]) or str(next(self._ids)),
                "application_id": str(APPLICATION_ID),
                "version": str(next(self._ids)),
            }
            if guild:
                entry["guild_id"] = guild
            registered.append(entry)
        self.commands[scope] = registered
        return _json(registered)

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(request.match_info["token"])
        if interaction is None or str(interaction.id) != request.match_info["interaction_id"]:
            return _error(404, 10062, "Unknown interaction")
        if time.monotonic() - interaction.created > self.callback_deadline:
            return _error(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = self._body(request)
        kind, data = body["type"], body.get("data") or {}
        problems = _choice_problems(data) if kind == 8 else _message_problems(data)
        if problems:
            return _invalid_form(problems)
        interaction.acknowledged = True
        message = self._apply_callback(interaction, kind, data)
        if request.query.get("with_response") not in ("1", "true"):
            return web.Response(status=204)
        answer: dict[str, Any] = {
            "interaction": {"id": str(interaction.id), "type": interaction.type}
        }
        if message is not None:
            answer["interaction"]["response_message_id"] = message["id"]
            answer["interaction"]["response_message_loading"] = kind == 5
            answer["interaction"]["response_message_ephemeral"] = bool(message["flags"] & EPHEMERAL)
            answer["resource"] = {"type": kind, "message": message}
        return _json(answer)

    def _apply_callback(
        self, interaction: Interaction, kind: int, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        if kind in (4, 5):
            flags = (data.get("flags") or 0) | (LOADING if kind == 5 else 0)
            message = self._new_message({**data, "flags": flags}, interaction=True)
            interaction.message_id = int(message["id"])
            return message
        if kind == 7 and interaction.message_id is not None:
            return _edit(self.messages[interaction.message_id], data)
        return None

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(request.match_info["token"])
        if interaction is None or not interaction.acknowledged:
            return _error(404, 10015, "Unknown Webhook")
        problems = _message_problems(self._body(request))
        if problems:
            return _invalid_form(problems)
        original = self.messages.get(interaction.message_id or 0)
        if original is not None and original["flags"] & LOADING:
            # The first follow-up after a deferred response replaces the "thinking" message.
            original["flags"] &= ~LOADING
            message = _edit(
                original, {k: v for k, v in self._body(request).items() if k != "flags"}
            )
        else:
            message = self._new_message(self._body(request), interaction=True)
        return _json(message)

    def _message_for(self, request: web.Request) -> dict[str, Any] | None:
        message_id = request.match_info["message_id"]
        if message_id == "@original":
            interaction = self.interactions.get(request.match_info["token"])
            message_id = str(interaction.message_id) if interaction else "0"
        return self.messages.get(int(message_id))

    async def _get_message(self, request: web.Request) -> web.Response:
        message = self._message_for(request)
        return _json(message) if message else _error(404, 10008, "Unknown Message")

    async def _edit_message(self, request: web.Request) -> web.Response:
        message = self._message_for(request)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        problems = _message_problems(self._body(request))
        if problems:
            return _invalid_form(problems)
        message["flags"] &= ~LOADING
        return _json(_edit(message, self._body(request)))

    async def _delete_message(self, request: web.Request) -> web.Response:
        message = self._message_for(request)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        del self.messages[int(message["id"])]
        return web.Response(status=204)

    async def _channel_message(self, request: web.Request) -> web.Response:
        problems = _message_problems(self._body(request))
        if problems:
            return _invalid_form(problems)
        return _json(self._new_message(self._body(request), interaction=False))

    def _new_message(self, data: dict[str, Any], *, interaction: bool) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(next(self._ids)),
            "channel_id": str(CHANNEL_ID),
            "guild_id": str(GUILD_ID),
            "author": _user(BOT_USER_ID),
            "type": 20 if interaction else 0,
            "content": "",
            "embeds": [],
            "components": [],
            "attachments": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": _now(),
            "edited_timestamp": None,
            "flags": 0,
        }
        if interaction:
            message["webhook_id"] = str(APPLICATION_ID)
            message["application_id"] = str(APPLICATION_ID)
        _edit(message, data)
        message["edited_timestamp"] = None
        self.messages[int(message["id"])] = message
        return message

    # Gateway

    async def _gateway_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.gateway_queries.append(dict(request.query))
        connection = _Connection(ws, zlib_stream=request.query.get("compress") == "zlib-stream")
        await connection.send(
            {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval * 1000}}
        )
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            await self._on_gateway_message(connection, json.loads(message.data))
        if self._gateway is connection:
            self._gateway = None
        return ws

    async def _on_gateway_message(self, connection: _Connection, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d") or {}
        if op == 1:
            self.heartbeats.append(time.monotonic())
            await connection.send({"op": 11})
        elif op == 2:
            await self._on_identify(connection, data)
        elif op == 6:
            await self._on_resume(connection, data)
        elif op == 8:
            chunk = {
                "guild_id": data["guild_id"],
                "members": [],
                "chunk_index": 0,
                "chunk_count": 1,
            }
            if data.get("nonce"):
                chunk["nonce"] = data["nonce"]
            await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)
        await self._notify()

    async def _on_identify(self, connection: _Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return
        self.identify = data
        self._gateway = connection
        ready = {
            "v": 10,
            "user": _user(BOT_USER_ID),
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": self._session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APPLICATION_ID), "flags": 0},
            "shard": data.get("shard", [0, 1]),
        }
        await self.dispatch("READY", ready)
        await self.dispatch("GUILD_CREATE", _guild())

    async def _on_resume(self, connection: _Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.token or data.get("session_id") != self._session_id:
            await connection.send({"op": 9, "d": False})
            return
        self._gateway = connection
        await self.dispatch("RESUMED", {})


class _Connection:
    """One gateway socket; ``zlib_stream`` is the transport compression discord.py asks for."""

    def __init__(self, ws: web.WebSocketResponse, *, zlib_stream: bool) -> None:
        self.ws = ws
        self._deflate = zlib.compressobj() if zlib_stream else None

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload)
        if self._deflate is None:
            await self.ws.send_str(text)
            return
        # One shared zlib stream per connection; each message ends on a sync flush.
        chunk = self._deflate.compress(text.encode()) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        await self.ws.send_bytes(chunk)


# discord.py wiring


@contextmanager
def point_discord_py_at(fake: FakeDiscord) -> Iterator[None]:
    """Send discord.py's REST calls and gateway connection to ``fake`` for the block."""
    route = discord.http.Route
    socket = discord.gateway.DiscordWebSocket
    saved = route.BASE, socket.DEFAULT_GATEWAY
    route.BASE = fake.api_url
    socket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        route.BASE, socket.DEFAULT_GATEWAY = saved


@asynccontextmanager
async def running_bot(
    client: discord.Client, fake: FakeDiscord, *, timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[discord.Client]:
    """Start ``client`` against ``fake``, wait until it is ready, and close it afterwards.

    Build the client with a small ``guild_ready_timeout`` (say 0.05): discord.py waits that long
    after the last GUILD_CREATE before it fires ``on_ready`` (2 s by default).
    """
    with point_discord_py_at(fake):
        task = asyncio.create_task(client.start(fake.token, reconnect=False))
        ready = asyncio.create_task(client.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {task, ready}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
            if task in done:
                task.result()
                raise AssertionError("the bot stopped before it was ready")
            if not done:
                raise AssertionError(f"the bot was not ready within {timeout}s")
            yield client
        finally:
            ready.cancel()
            async with asyncio.timeout(timeout):
                await client.close()
                await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord; use :func:`running_bot` to connect a client to it."""
    async with FakeDiscord(heartbeat_interval=0.5) as fake:
        yield fake


# Payloads


def _now() -> str:
    return discord.utils.utcnow().isoformat()


def _user(user_id: int) -> dict[str, Any]:
    names = {BOT_USER_ID: "HarmonYa", OWNER_ID: "owner"}
    return {
        "id": str(user_id),
        "username": names.get(user_id, f"member{user_id % 1000}"),
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": user_id == BOT_USER_ID,
    }


def _member(user: dict[str, Any], permissions: int) -> dict[str, Any]:
    return {
        "user": user,
        "roles": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "permissions": str(permissions),
    }


def _channel() -> dict[str, Any]:
    return {
        "id": str(CHANNEL_ID),
        "type": 0,
        "guild_id": str(GUILD_ID),
        "name": "music",
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "rate_limit_per_user": 0,
    }


def _guild() -> dict[str, Any]:
    everyone = {
        "id": str(GUILD_ID),
        "name": "@everyone",
        "permissions": str(MEMBER_PERMISSIONS),
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    return {
        "id": str(GUILD_ID),
        "name": "HarmonYa test server",
        "owner_id": str(OWNER_ID),
        "unavailable": False,
        "member_count": 2,
        "large": False,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "roles": [everyone],
        "channels": [_channel()],
        "members": [_member(_user(BOT_USER_ID), MEMBER_PERMISSIONS)],
        "threads": [],
        "emojis": [],
        "stickers": [],
        "features": [],
        "voice_states": [],
        "presences": [],
        "preferred_locale": "en-US",
    }


def _application() -> dict[str, Any]:
    return {
        "id": str(APPLICATION_ID),
        "name": "HarmonYa",
        "description": "",
        "icon": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": _user(OWNER_ID),
        "verify_key": "0" * 64,
        "flags": 0,
        "team": None,
    }


def _json(payload: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only when the content type is exactly this.
    headers = {"Content-Type": "application/json"}
    return web.Response(body=json.dumps(payload).encode(), status=status, headers=headers)


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status)


def _invalid_form(problems: list[str]) -> web.Response:
    errors = {}
    for problem in problems:
        where, _, why = problem.partition(": ")
        errors[where] = {"_errors": [{"code": "BASE_TYPE_INVALID", "message": why}]}
    return _json({"message": "Invalid Form Body", "code": 50035, "errors": errors}, 400)


async def _read_body(request: web.Request) -> tuple[Any, dict[str, bytes]]:
    if not request.can_read_body:
        return None, {}
    if request.content_type != "multipart/form-data":
        return await request.json(), {}
    body, files = None, {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        content = await part.read()
        if part.name == "payload_json":
            body = json.loads(content)
        else:
            files[part.filename or part.name or ""] = bytes(content)
    return body, files


def _edit(message: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    for key in ("content", "embeds", "components", "flags", "attachments"):
        if data.get(key) is not None:
            message[key] = data[key]
    message["edited_timestamp"] = _now()
    return message


def _find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        children = list(component.get("components", []))
        if component.get("accessory"):
            children.append(component["accessory"])
        found = _find_component(children, custom_id)
        if found is not None:
            return found
    return None


def _check_permissions(command: dict[str, Any], permissions: int) -> None:
    required = command.get("default_member_permissions")
    if required is None or permissions & ADMINISTRATOR:
        return
    if int(required) & ~permissions:
        raise PermissionError(f"Discord hides /{command['name']} from this member")


def _too_long(where: str, text: str | None, limit: int) -> list[str]:
    return [f"{where}: must be {limit} or fewer in length"] if len(text or "") > limit else []


def _message_problems(data: dict[str, Any] | None) -> list[str]:
    """Discord's documented message limits, as 50035 Invalid Form Body would name them."""
    data = data or {}
    problems = _too_long("content", data.get("content"), 2000)
    embeds = data.get("embeds") or []
    if len(embeds) > 10:
        problems.append("embeds: must be 10 or fewer in length")
    total = 0
    for i, embed in enumerate(embeds):
        texts = [
            (f"embeds.{i}.title", embed.get("title"), 256),
            (f"embeds.{i}.description", embed.get("description"), 4096),
            (f"embeds.{i}.footer.text", (embed.get("footer") or {}).get("text"), 2048),
            (f"embeds.{i}.author.name", (embed.get("author") or {}).get("name"), 256),
        ]
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems.append(f"embeds.{i}.fields: must be 25 or fewer in length")
        for j, item in enumerate(fields):
            texts.append((f"embeds.{i}.fields.{j}.name", item.get("name"), 256))
            texts.append((f"embeds.{i}.fields.{j}.value", item.get("value"), 1024))
            if not item.get("name") or not item.get("value"):
                problems.append(f"embeds.{i}.fields.{j}: name and value are required")
        for where, text, limit in texts:
            problems += _too_long(where, text, limit)
            total += len(text or "")
    if total > 6000:
        problems.append("embeds: the embeds in a message must total 6000 or fewer characters")
    return problems + _component_problems(data.get("components") or [])


def _component_problems(rows: list[dict[str, Any]]) -> list[str]:
    problems = [] if len(rows) <= 5 else ["components: must be 5 or fewer in length"]
    for i, row in enumerate(rows):
        children = row.get("components") or []
        if row.get("type") == 1 and len(children) > 5:
            problems.append(f"components.{i}.components: must be 5 or fewer in length")
        for j, child in enumerate(children):
            where = f"components.{i}.components.{j}"
            problems += _too_long(f"{where}.custom_id", child.get("custom_id"), 100)
            problems += _too_long(f"{where}.label", child.get("label"), 80)
    return problems


def _choice_problems(data: dict[str, Any]) -> list[str]:
    choices = data.get("choices") or []
    problems = [] if len(choices) <= 25 else ["choices: must be 25 or fewer in length"]
    for i, choice in enumerate(choices):
        if not 1 <= len(choice.get("name") or "") <= 100:
            problems.append(f"choices.{i}.name: must be between 1 and 100 in length")
        value = choice.get("value")
        if isinstance(value, str) and len(value) > 100:
            problems.append(f"choices.{i}.value: must be 100 or fewer in length")
    return problems


def _command_problems(command: dict[str, Any]) -> list[str]:
    name = command.get("name", "")
    problems = []
    if not 1 <= len(name) <= 32 or name != name.lower():
        problems.append(f"{name}.name: must be 1 to 32 lowercase characters")
    if command.get("type", 1) == 1 and not 1 <= len(command.get("description", "")) <= 100:
        problems.append(f"{name}.description: must be between 1 and 100 in length")
    options = command.get("options") or []
    if len(options) > 25:
        problems.append(f"{name}.options: must be 25 or fewer in length")
    required = [bool(o.get("required")) for o in options if o.get("type") not in (1, 2)]
    if required != sorted(required, reverse=True):
        problems.append(f"{name}.options: required options must come before optional ones")
    return problems
