"""``approvals mcp gate``: put an MCP server behind human approval, with no agent change.

The command starts the upstream server ``COMMAND [ARG…]`` over stdio and serves it to the
MCP client, over stdio or, with ``--listen HOST:PORT``, over Streamable HTTP at
``http://HOST:PORT/mcp``. Everything passes through, except that a call of a tool
matching a ``--gate`` glob waits for a human's decision (``proxy.py`` does the work; this
module only reads the command line, so ``approvals --help`` loads no MCP SDK).
"""

from __future__ import annotations

from typing import Annotated

import typer

ARGUMENTS = "COMMAND [ARG…] of the upstream MCP server, after --"
KEY_HELP = "An API key with events:write and approvals:read."


def listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8765)")
    return host, int(port)


def command(
    upstream: Annotated[
        list[str], typer.Argument(metavar="-- COMMAND [ARG…]", help=ARGUMENTS, show_default=False)
    ],
    url: Annotated[
        str | None,
        typer.Option(
            "--url", envvar="APPROVALS_URL", help="The approvals service (http://127.0.0.1:8000)."
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", envvar="APPROVALS_KEY", help=KEY_HELP, show_default=False),
    ] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="The agentId of the approvals (for policies).")
    ] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option("--gate", help="Tools that need approval, a glob (repeat); default: all."),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="Serve Streamable HTTP at http://HOST:PORT/mcp, not stdio."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=1, help="Seconds a human has to decide; then it is rejected."
        ),
    ] = None,
) -> None:
    """Serve an MCP server's tools so that gated calls wait for a human's approval."""
    address = listen_address(listen) if listen is not None else None
    try:
        import anyio

        from approvals.mcp import proxy
    except ImportError as exc:  # the MCP SDK is an extra
        typer.echo(
            f"error: the gate needs the MCP SDK ({exc}): pip install 'approvals[mcp]'", err=True
        )
        raise typer.Exit(2) from exc
    options = proxy.Options(
        command=upstream[0],
        args=tuple(upstream[1:]),
        url=url,
        key=key,
        agent=agent,
        gates=tuple(gate or ("*",)),
        listen=address,
        timeout=timeout,
    )
    try:
        anyio.run(proxy.serve, options)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        cause = first(exc, (OSError, proxy.UpstreamError))
        if cause is None:
            raise
        what = f"cannot start {upstream[0]!r}: " if isinstance(cause, OSError) else ""
        typer.echo(f"error: {what}{cause}", err=True)
        raise typer.Exit(1) from exc


def first(exc: BaseException, kinds: tuple[type[Exception], ...]) -> Exception | None:
    """The first exception of ``kinds`` in ``exc``, looking inside exception groups (the
    task groups the gate runs in raise them)."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := first(inner, kinds)) is not None:
                return found
    return None
