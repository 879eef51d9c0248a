"""What every channel is: one module per place reviewers decide (Slack, email, Discord,
Teams), each a :class:`Channel`.

A channel renders an approval for its platform (escaping agent text its own way), posts
it, and, when it is *live*, edits what it posted once the approval resolves anywhere. What
they share is done once, by the :class:`~approvals.delivery.channels.sender.Notifier` and
the outbox: the durable delivery, its retries and the honouring of ``Retry-After``, the
outbound policy on the platform's host, the record of posted messages and their edits.
Incoming clicks share :mod:`approvals.delivery.channels.interactions`: replay receipts,
the linked reviewer, the refusal and the decision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from approvals.core.outbound import Refused
from approvals.delivery import schedule
from approvals.delivery.worker import Sent

if TYPE_CHECKING:
    from approvals.core.config import Settings
    from approvals.delivery.channels.schema import Lead, Notice


@dataclass(frozen=True)
class Posted:
    """Where a live channel's message is: enough to edit it later."""

    conversation: str  # Slack or Discord channel id, Teams conversation id
    ref: str  # the message: Slack ts, Discord or Teams message id
    status_code: int = 200
    service_url: str | None = None  # Teams: the service the conversation lives on


@dataclass(frozen=True)
class Message:
    """A posted message on record (a ``channel_messages`` row)."""

    conversation: str
    ref: str
    service_url: str | None = None


class Refusal(Exception):
    """A platform answered an HTTP error: the attempt's outcome, retried unless permanent."""

    def __init__(
        self,
        label: str,
        status: int,
        detail: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        # 4xx other than timeouts and rate limits cannot be fixed by trying again.
        self.permanent = 400 <= status < 500 and status not in (408, 409, 425, 429)
        text = f"{label} answered HTTP {status}" + (f": {detail}" if detail else "")
        if retry_after is not None:
            text += f" (Retry-After {retry_after:g}s)"
        super().__init__(text[:500])


def refusal(label: str, status: int, headers: Any, detail: str = "") -> Refusal:
    """A :class:`Refusal` for an HTTP answer, with its ``Retry-After`` when it is a 429 or 503."""
    retry_after = None
    if status in (429, 503):
        retry_after = schedule.parse_retry_after(headers.get("retry-after"), time.time())
    return Refusal(label, status, detail, retry_after)


class Channel:
    """One place reviewers are told about approvals (and, when live, decide them)."""

    name: ClassVar[str]  # the route's ``channel``
    label: ClassVar[str]  # how people name it: "Slack"
    scheme: ClassVar[str]  # the outbox URL scheme of its deliveries
    contact: ClassVar[str]  # the ``users`` column that reaches a reviewer here
    live: ClassVar[bool] = False  # posts messages it edits when the approval resolves

    def __init__(self, services: Any) -> None:
        self.services = services
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """An HTTP client for the platform's API (made on first use, kept alive)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.webhook_timeout, follow_redirects=False
            )
        return self._http

    async def check(self, url: str) -> None:
        """Raise ``Refused`` (permanent) when the outbound policy refuses ``url``'s host, for
        a URL only known at send time (a Teams service URL); ``hosts()`` covers the rest."""
        await self.services.webhooks.check_destination(url)

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One API call; an HTTP error answer raises :class:`Refusal` (with what the
        platform said, cut short)."""
        answer = await self.http.request(method, url, **kwargs)
        if answer.status_code >= 400:
            raise refusal(self.label, answer.status_code, answer.headers, answer.text[:200])
        return answer

    async def close(self) -> None:
        """Let go of the HTTP client."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def settings(self) -> Settings:
        """The service's settings."""
        return self.services.settings

    def missing(self) -> str | None:
        """Why this channel cannot send (a setting not set), or None."""
        return None

    def hosts(self) -> list[str]:
        """The platform URLs a send connects to: each must pass the outbound policy."""
        return []

    def escape(self, text: Any) -> str:
        """Agent-written ``text`` made inert where this channel shows it."""
        raise NotImplementedError

    async def post(
        self, notice: Notice, approval: dict[str, Any], lead: Lead | None
    ) -> Posted | Sent:
        """Tell ``notice.to`` about ``approval``: the message's place (live channels) or
        the attempt's outcome. May raise :class:`Refusal`, ``OSError`` or ``TimeoutError``."""
        raise NotImplementedError

    async def edit(self, approval: dict[str, Any], message: Message) -> None:
        """Show ``approval`` as it is now in a message posted before (live channels)."""
        raise NotImplementedError

    def failed(self, exc: Exception) -> Sent | None:
        """A platform error as the attempt's outcome; None when ``exc`` is not one."""
        if isinstance(exc, Refusal):
            return Sent(
                status_code=exc.status,
                error=str(exc),
                retry_after=exc.retry_after,
                permanent=exc.permanent,
            )
        if isinstance(exc, Refused):
            return Sent(error=str(exc), permanent=True)
        if isinstance(exc, (OSError, TimeoutError, httpx.TransportError)):
            return Sent(error=f"{self.label} unreachable: {type(exc).__name__}: {exc}"[:500])
        return None
