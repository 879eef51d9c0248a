"""The gate's MCP proxy: the upstream server's session, served again with approvals on
its tool calls (``approvals mcp gate``; ``gate.py`` is the command).

``Gate`` holds one client session to the upstream server (started over stdio) and builds
a low-level ``Server`` that answers as that server does: its name, version, instructions
and capabilities, and every request forwarded as it came. Two things differ. A
``tools/call`` whose tool matches a ``--gate`` glob first opens an approval through
``approvals.client`` and waits for it (approved: forwarded with the approved arguments;
otherwise an ``isError`` result saying why). An ``elicitation/create`` from upstream
becomes an approval that a reviewer answers, and that answer goes back upstream.
Notifications from upstream (logging, list changes, resource updates) go to every
connected client; progress goes to the request it belongs to.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
from mcp import types
from mcp.client.session import ClientRequestContext, ClientSession, IncomingMessage
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from approvals import __version__
from approvals.client import ApprovalsError, AsyncApprovals, Decision
from approvals.client import core as sdk
from approvals.client.transport import KEY_SETTING, URL_SETTING, approval_body
from approvals.digest import approved_arguments
from approvals.mcp import elicitation
from approvals.mcp.stdio import pipes

log = logging.getLogger("approvals.mcp.gate")

MARK = "[needs approval] "  # the start of a gated tool's description in tools/list
SOURCE = "mcp"
OPEN_PATIENCE = 5.0  # seconds to retry opening an approval while the service is unreachable
HEARTBEAT = 10.0  # seconds between progress notifications while a call waits for a human
LIST_PAGES = 100  # bound on the pages of tools/list read to learn whether a tool exists
HEADLINE = 200  # characters of an elicitation's message used as the approval's title
RESERVED_META = "io.modelcontextprotocol/"  # per-request envelope keys of the downstream hop
HIDDEN_ENV = (KEY_SETTING,)  # the gate's key is not the upstream server's business


@dataclass(frozen=True)
class Options:
    """What ``approvals mcp gate`` was asked to do."""

    command: str
    args: Sequence[str] = ()
    url: str | None = None
    key: str | None = None
    agent: str | None = None
    gates: Sequence[str] = ("*",)
    listen: tuple[str, int] | None = None
    timeout: float | None = None


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _failure(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def refusal(decision: Decision, tool: str) -> str:
    """What the MCP client reads when a human did not approve the call."""
    who = decision.resolved_by or "a reviewer"
    if decision.status == "rejected":
        reason = decision.comment or "no reason given"
        return f"Not run: {who} rejected this call of {tool}. Reason: {reason}"
    if decision.status == "answered":
        return (
            f"Not run: {who} answered instead of approving this call of {tool}: {decision.answer}"
        )
    if decision.status == "expired":
        return (
            f"Not run: nobody decided on this call of {tool} in time "
            f"(approval {decision.approval_id} expired)."
        )
    return f"Not run: the approval of this call of {tool} ended as {decision.status}."


def elicit_result(decision: Decision, form: list[elicitation.Field]) -> types.ElicitResult:
    """The elicitation's answer from the approval's outcome: answered → accept with the
    content, rejected → decline, anything else (expired, withdrawn) → cancel."""
    if decision.status == "rejected":
        return types.ElicitResult(action="decline")
    if decision.status in ("answered", "approved"):
        content, errors = elicitation.from_answer(form, decision.answer or "{}")
        if not errors:
            return types.ElicitResult(action="accept", content=content)
        problems = "; ".join(f"{name or 'answer'} {why}" for name, why in errors.items())
        log.warning(
            "approval %s: the answer does not fit the form (%s)", decision.approval_id, problems
        )
    return types.ElicitResult(action="cancel")


class UpstreamError(Exception):
    """The upstream MCP server did not start, or exited."""


T = TypeVar("T")


class Watched(Generic[T]):
    """The upstream server's message stream, as the client session reads it, with an
    event set when it ends: the server exited (or the gate is closing it)."""

    def __init__(self, stream: ReadStream[T]) -> None:
        self.stream = stream
        self.ended = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # last_context, when the stream carries it

    async def receive(self) -> T:
        return await self.stream.receive()

    async def aclose(self) -> None:
        self.ended.set()
        await self.stream.aclose()

    def __aiter__(self) -> Watched[T]:
        return self

    async def __anext__(self) -> T:
        return await self.stream.__anext__()

    async def __aenter__(self) -> Watched[T]:
        await self.stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        self.ended.set()
        return await self.stream.__aexit__(*exc)


class Track:
    """Server middleware that remembers each client connection, for notifications that
    belong to no request (list changes, resource updates, log lines)."""

    def __init__(self) -> None:
        self.connections: weakref.WeakSet[Connection] = weakref.WeakSet()

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        connection = getattr(ctx.session, "_connection", None)
        if isinstance(connection, Connection):
            self.connections.add(connection)
        return await call_next(ctx)


class Mirror(Server[Any]):
    """A low-level server that introduces itself as the upstream server did."""

    def __init__(self, init: types.InitializeResult) -> None:
        info = init.server_info
        super().__init__(
            info.name,
            version=info.version,
            title=info.title,
            description=info.description,
            instructions=init.instructions,
            website_url=info.website_url,
            icons=info.icons,
        )
        caps = init.capabilities
        self.options = InitializationOptions(
            server_name=info.name,
            server_version=info.version,
            title=info.title,
            description=info.description,
            website_url=info.website_url,
            icons=info.icons,
            instructions=init.instructions,
            capabilities=types.ServerCapabilities(
                tools=caps.tools,
                resources=caps.resources,
                prompts=caps.prompts,
                logging=caps.logging,
                completions=caps.completions,
            ),
        )

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return self.options


Handler = Callable[[ServerRequestContext[Any, Any], Any], Awaitable[Any]]


class Gate:
    """The upstream session and the approvals around its tool calls and elicitations."""

    def __init__(self, options: Options, approvals: AsyncApprovals) -> None:
        self.options = options
        self.approvals = approvals
        self.run_id = f"mcp_{uuid.uuid4().hex[:16]}"  # one run per gate process
        self.track = Track()
        self.upstream: ClientSession | None = None
        self.init: types.InitializeResult | None = None
        self.ended = anyio.Event()  # set when the upstream server's stream ends
        self.exited = False
        self.known: set[str] | None = None  # the upstream tools' names, as last listed

    # -- upstream ------------------------------------------------------------------------

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[types.InitializeResult]:
        """Start the upstream server and hold its session open."""
        env = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENV}
        params = StdioServerParameters(
            command=self.options.command, args=list(self.options.args), env=env
        )
        async with stdio_client(params, errlog=sys.stderr) as (read, write):
            watched = Watched(read)
            async with ClientSession(
                watched,
                write,
                elicitation_callback=self.elicit,
                message_handler=self.relay,
                client_info=types.Implementation(name="approvals-mcp-gate", version=__version__),
            ) as session:
                try:
                    self.init = await session.initialize()
                except MCPError as exc:
                    raise UpstreamError(
                        f"the MCP server {self.options.command!r} did not start ({exc.message}); "
                        "what it printed is above"
                    ) from exc
                self.upstream, self.ended = session, watched.ended
                try:
                    yield self.init
                finally:
                    self.upstream = None

    async def watch(self, scope: anyio.CancelScope) -> None:
        """Stop serving when the upstream server exits: the client then sees the server
        gone, as it would without the gate."""
        await self.ended.wait()
        log.error("the MCP server %r exited", self.options.command)
        self.exited = True
        scope.cancel()

    def _session(self) -> ClientSession:
        if self.upstream is None:
            raise RuntimeError("the upstream server is not connected")
        return self.upstream

    async def relay(self, message: IncomingMessage) -> None:
        """Pass a notification from upstream to every connected client."""
        if isinstance(message, Exception):
            log.warning("upstream server: %s", message)
            return
        if isinstance(message, types.ProgressNotification):
            return  # a request's progress goes to that request (see _progress)
        if isinstance(message, types.ToolListChangedNotification):
            self.known = None
        data = _dump(message)
        for connection in list(self.track.connections):
            await connection.notify(data["method"], data.get("params"))

    # -- the served side -----------------------------------------------------------------

    def server(self) -> Mirror:
        """The low-level server clients talk to, with a handler for each capability the
        upstream server declared."""
        assert self.init is not None
        server = Mirror(self.init)
        # The SDK's tracing middleware (a span per message) would be the gate's largest
        # cost per call; the client and the upstream server keep their own spans.
        server.middleware = [self.track]
        caps = self.init.capabilities
        if caps.tools is not None:
            server.add_request_handler("tools/list", types.PaginatedRequestParams, self.list_tools)
            server.add_request_handler("tools/call", types.CallToolRequestParams, self.call_tool)
        routes: list[tuple[str, type[BaseModel], type[BaseModel], type[BaseModel]]] = []
        if caps.resources is not None:
            routes += [
                (
                    "resources/list",
                    types.PaginatedRequestParams,
                    types.ListResourcesRequest,
                    types.ListResourcesResult,
                ),
                (
                    "resources/templates/list",
                    types.PaginatedRequestParams,
                    types.ListResourceTemplatesRequest,
                    types.ListResourceTemplatesResult,
                ),
                (
                    "resources/read",
                    types.ReadResourceRequestParams,
                    types.ReadResourceRequest,
                    types.ReadResourceResult,
                ),
            ]
            if caps.resources.subscribe:
                routes += [
                    (
                        "resources/subscribe",
                        types.SubscribeRequestParams,
                        types.SubscribeRequest,
                        types.EmptyResult,
                    ),
                    (
                        "resources/unsubscribe",
                        types.UnsubscribeRequestParams,
                        types.UnsubscribeRequest,
                        types.EmptyResult,
                    ),
                ]
        if caps.prompts is not None:
            routes += [
                (
                    "prompts/list",
                    types.PaginatedRequestParams,
                    types.ListPromptsRequest,
                    types.ListPromptsResult,
                ),
                (
                    "prompts/get",
                    types.GetPromptRequestParams,
                    types.GetPromptRequest,
                    types.GetPromptResult,
                ),
            ]
        if caps.completions is not None:
            routes.append(
                (
                    "completion/complete",
                    types.CompleteRequestParams,
                    types.CompleteRequest,
                    types.CompleteResult,
                )
            )
        if caps.logging is not None:
            routes.append(
                (
                    "logging/setLevel",
                    types.SetLevelRequestParams,
                    types.SetLevelRequest,
                    types.EmptyResult,
                )
            )
        for method, params_type, request_type, result_type in routes:
            server.add_request_handler(method, params_type, self.forward(request_type, result_type))
        return server

    def forward(self, request_type: type[BaseModel], result_type: type[BaseModel]) -> Handler:
        """A handler that sends the request upstream as it came and answers what came back."""

        async def handler(ctx: ServerRequestContext[Any, Any], params: BaseModel) -> BaseModel:
            request = request_type.model_validate({"params": self._outgoing(params)})
            return await self._session().send_request(
                request,  # type: ignore[arg-type]
                result_type,
                progress_callback=self._progress(ctx),
            )

        return handler

    @staticmethod
    def _outgoing(params: BaseModel | None) -> dict[str, Any] | None:
        """Request params for upstream: the client's own ``_meta`` keys (its progress
        token, the per-request protocol envelope) stay on the client's hop."""
        if params is None:
            return None
        data = _dump(params)
        meta = data.pop("_meta", None) or {}
        kept = {
            k: v
            for k, v in meta.items()
            if k != "progressToken" and not k.startswith(RESERVED_META)
        }
        if kept:
            data["_meta"] = kept
        return data

    @staticmethod
    def _progress(ctx: ServerRequestContext[Any, Any]) -> ProgressFnT | None:
        """Pass upstream progress on to the client's request, when it asked for progress."""
        if (ctx.meta or {}).get("progress_token") is None:
            return None

        async def report(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        return report

    # -- tools ---------------------------------------------------------------------------

    def gated(self, tool: str) -> bool:
        """Whether calls of ``tool`` wait for a human (it matches a ``--gate`` glob)."""
        return any(fnmatch.fnmatchcase(tool, glob) for glob in self.options.gates)

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams
    ) -> types.ListToolsResult:
        """The upstream tools, each gated one marked in its description."""
        request = types.ListToolsRequest(
            params=types.PaginatedRequestParams.model_validate(self._outgoing(params))
        )
        listed = await self._session().send_request(request, types.ListToolsResult)
        if params.cursor is None and listed.next_cursor is None:
            self.known = {tool.name for tool in listed.tools}
        tools = [
            tool.model_copy(update={"description": MARK + (tool.description or "")})
            if self.gated(tool.name)
            else tool
            for tool in listed.tools
        ]
        return listed.model_copy(update={"tools": tools})

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """Call the tool upstream, after a human approved it when it is gated (a tool the
        server does not have goes straight to it, for its own error: no human is asked)."""
        if self.gated(params.name) and await self._exists(params.name):
            arguments = params.arguments or {}
            try:
                decision = await self._approval(ctx, params.name, arguments)
            except ApprovalsError as exc:
                return _failure(self.unreachable(f"{params.name} needs a human's approval", exc))
            if not decision.approved:
                return _failure(refusal(decision, params.name))
            approved = approved_arguments(arguments, decision.edits) or {}
            try:
                # The receipt before the call: an approval runs its call once.
                await self.approvals.record_execution(decision.approval_id, approved)
            except ApprovalsError as exc:
                return _failure(
                    f"Not run: the approval {decision.approval_id} of this call of "
                    f"{params.name} cannot be executed: {exc}"
                )
            params = params.model_copy(update={"arguments": approved})
        request = types.CallToolRequest(
            params=types.CallToolRequestParams.model_validate(self._outgoing(params))
        )
        return await self._session().send_request(
            request, types.CallToolResult, progress_callback=self._progress(ctx)
        )

    async def _exists(self, tool: str) -> bool:
        """Whether the upstream server has ``tool``, listing its tools again when it is
        not among those last listed; when they cannot be listed, assume it does."""
        if self.known is not None and tool in self.known:
            return True
        names: set[str] = set()
        cursor: str | None = None
        try:
            for _ in range(LIST_PAGES):
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await self._session().send_request(
                    types.ListToolsRequest(params=params), types.ListToolsResult
                )
                names.update(t.name for t in page.tools)
                if not (cursor := page.next_cursor):
                    break
        except MCPError as exc:
            log.warning("could not list the upstream tools (%s); gating %s anyway", exc, tool)
            return True
        self.known = names
        return tool in names

    def origin(self, method: str) -> dict[str, Any]:
        """``detail.mcp``: the upstream server and the MCP method that asks."""
        assert self.init is not None
        info = self.init.server_info
        found = {
            "server": info.name,
            "version": info.version,
            "title": info.title,
            "method": method,
        }
        return {k: v for k, v in found.items() if v}

    async def _approval(
        self, ctx: ServerRequestContext[Any, Any], tool: str, arguments: dict[str, Any]
    ) -> Decision:
        server = self.origin("tools/call")["server"]
        opened = await self.open(
            f"Call {tool} on the MCP server {server}",
            {"mcp": self.origin("tools/call")},
            tool=tool,
            arguments=arguments,
        )
        if not opened.pending:
            return opened  # a policy decided at once
        return await self.wait(opened, ctx)

    # -- approvals -----------------------------------------------------------------------

    async def open(
        self,
        title: str,
        detail: dict[str, Any],
        *,
        tool: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Decision:
        """Open an approval (``source: "mcp"``); retried for a few seconds while the
        service is unreachable, then ``ApprovalsError``."""
        body = approval_body(
            title[: elicitation.MAX_TEXT],
            tool=tool,
            arguments=arguments,
            detail=detail,
            ids={"run_id": self.run_id, "thread_id": None, "agent_id": self.options.agent},
            timeout=self.options.timeout,
            on_timeout="reject",
            key=None,
            callback_url=None,
            source=SOURCE,
        )
        deadline = time.monotonic() + OPEN_PATIENCE
        request = sdk.Request("POST", "/v1/approvals", json=body)
        answer = await self.approvals._drive(sdk.call(request, deadline=deadline))
        return Decision.from_json(answer)

    async def wait(
        self, opened: Decision, ctx: ServerRequestContext[Any, Any] | None = None
    ) -> Decision:
        """Wait through the SDK for the decision: it rides out network drops and service
        restarts, and withdraws the approval when the wait is cancelled (the client
        cancelled the call). Progress goes to ``ctx``'s client meanwhile."""
        outcome: Decision | ApprovalsError
        async with anyio.create_task_group() as tasks:
            if ctx is not None:
                tasks.start_soon(self._heartbeat, ctx, opened.approval_id)
            try:
                outcome = await self.approvals.wait(opened.approval_id)
            except ApprovalsError as exc:
                outcome = exc
            tasks.cancel_scope.cancel()
        if isinstance(outcome, ApprovalsError):
            raise outcome
        return outcome

    async def _heartbeat(self, ctx: ServerRequestContext[Any, Any], approval_id: str) -> None:
        """Progress notifications while waiting, so a client that counts its timeout from
        the last progress keeps waiting for the human."""
        began = time.monotonic()
        while True:
            await anyio.sleep(HEARTBEAT)
            try:
                await ctx.session.report_progress(
                    round(time.monotonic() - began),
                    None,
                    f"waiting for a human to decide {approval_id}",
                )
            except Exception as exc:  # a dead client stream: the wait goes on regardless
                log.debug("progress while waiting for %s: %s", approval_id, exc)

    def unreachable(self, what: str, exc: ApprovalsError) -> str:
        """The text of an error talking to the service: the URL and the settings to check."""
        return (
            f"Not run: {what}, but the approvals service at {self.approvals.url} could not be "
            f"asked: {exc.message} (the gate reads {URL_SETTING} and {KEY_SETTING}, or --url "
            "and --key)"
        )

    # -- elicitations --------------------------------------------------------------------

    async def elicit(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        """Answer an upstream ``elicitation/create`` with a reviewer's answer."""
        if not isinstance(params, types.ElicitRequestFormParams):
            log.warning("declined a URL-mode elicitation: the gate answers forms only")
            return types.ElicitResult(action="decline")
        try:
            form = elicitation.fields(params.requested_schema)
        except elicitation.Unsupported as exc:
            log.warning("declined an elicitation: %s", exc)
            return types.ElicitResult(action="decline")
        title = " ".join(params.message.split()) or "The MCP server asks a question"
        detail: dict[str, Any] = {
            "mcp": self.origin("elicitation/create"),
            "requestedSchema": params.requested_schema,
            "allowedDecisions": ["answer", "reject"],
            "allowEdit": False,
        }
        if len(title) > HEADLINE:  # the whole question goes on the request page
            title, detail["description"] = title[: HEADLINE - 1] + "…", params.message
        try:
            opened = await self.open(title, detail)
            decision = opened if not opened.pending else await self.wait(opened)
        except ApprovalsError as exc:
            return types.ErrorData(
                code=types.INTERNAL_ERROR,
                message=self.unreachable("the question needs a human's answer", exc),
            )
        return elicit_result(decision, form)


async def serve(options: Options) -> None:
    """Run the gate until the client goes away (stdio) or the process is stopped (HTTP);
    ``UpstreamError`` when the upstream server does not start or exits meanwhile."""
    async with AsyncApprovals(options.url, options.key, agent_id=options.agent) as approvals:
        gate = Gate(options, approvals)
        async with gate.connect(), anyio.create_task_group() as tasks:
            server = gate.server()
            tasks.start_soon(gate.watch, tasks.cancel_scope)
            if options.listen is None:
                async with pipes() as own, stdio_server(*(own or ())) as (read, write):
                    await server.run(read, write, server.create_initialization_options())
            else:
                await _serve_http(server, *options.listen)
            tasks.cancel_scope.cancel()
        if gate.exited:
            raise UpstreamError(f"the MCP server {options.command!r} exited; the gate stops too")


async def _serve_http(server: Mirror, host: str, port: int) -> None:
    import uvicorn

    app = server.streamable_http_app(host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    print(
        f"approvals mcp gate: serving {server.name} at http://{host}:{port}/mcp",
        file=sys.stderr,
        flush=True,
    )
    await uvicorn.Server(config).serve()
