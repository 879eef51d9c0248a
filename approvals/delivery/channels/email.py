"""Email: the message with personal decision links, its signed links, and sending by SMTP."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from html import escape as html_escape
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from approvals.core.config import Settings
from approvals.delivery.channels.base import Channel
from approvals.delivery.channels.schema import Lead
from approvals.delivery.channels.slack import arguments_text, page_url
from approvals.delivery.worker import Sent
from approvals.views import rows
from approvals.views.render import render

if TYPE_CHECKING:
    from approvals.delivery.channels.schema import Notice

LINK_MAX_AGE = 30 * 24 * 3600  # a backstop; a link also dies when its approval resolves
SALT = "approvals-email-link"


@dataclass(frozen=True)
class Link:
    """What a signed link says: decide ``decision`` on ``approval_id`` as ``user`` (once)."""

    approval_id: str
    user: str
    decision: str
    nonce: str
    digest: str | None = None  # of the arguments the email showed


def signer(key: str) -> URLSafeTimedSerializer:
    """The link signer, keyed like sessions (APPROVALS_SECRET_KEY or the service key)."""
    return URLSafeTimedSerializer(key, salt=SALT)


def make_links(
    sign: URLSafeTimedSerializer, approval_id: str, user: str, digest: str | None = None
) -> dict[str, str]:
    """Approve and reject tokens sharing one nonce, so using either spends both; they
    carry the digest of the arguments the email shows (a change since is refused)."""
    nonce = secrets.token_urlsafe(16)
    return {
        decision: str(
            sign.dumps({"a": approval_id, "u": user, "d": decision, "n": nonce, "g": digest})
        )
        for decision in ("approve", "reject")
    }


def link_urls(settings: Settings, tokens: dict[str, str]) -> dict[str, str]:
    """The confirmation page of each token (``/email/{token}``), by decision."""
    return {decision: f"{settings.public_url}/email/{token}" for decision, token in tokens.items()}


def read_link(sign: URLSafeTimedSerializer, token: str) -> Link | None:
    """The link a token carries, or None when it is forged, mangled or too old."""
    try:
        data = sign.loads(token, max_age=LINK_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("d") not in ("approve", "reject"):
        return None
    fields = [data.get(k) for k in ("a", "u", "d", "n")]
    if not all(isinstance(f, str) and f for f in fields):
        return None
    approval_id, user, decision, nonce = (str(f) for f in fields)
    digest = data.get("g")
    return Link(approval_id, user, decision, nonce, digest if isinstance(digest, str) else None)


def message(
    approval: dict[str, Any],
    settings: Settings,
    to: str,
    tokens: dict[str, str] | None,
    lead: Lead | None = None,
) -> EmailMessage:
    """The text and HTML email about one approval (agent text escaped in the HTML)."""
    arguments, cut = arguments_text(approval["arguments"], limit=4000)
    context = {
        "a": rows.approval(approval),
        "arguments": arguments,
        "cut": cut,
        "page": page_url(settings, approval["id"]),
        "links": link_urls(settings, tokens or {}),
        "lead": lead,
    }
    title = " ".join(
        (approval.get("headline") or approval["title"] or "Approval requested").split()
    )[:200]
    mail = EmailMessage()
    mail["Subject"] = f"[approval] {lead.tag + ': ' if lead is not None else ''}{title}"
    mail["From"] = settings.email_from
    mail["To"] = to
    mail.set_content(render("email.txt", **context))
    mail.add_alternative(render("email.html", **context), subtype="html")
    return mail


async def send(settings: Settings, mail: EmailMessage) -> None:
    """Send through APPROVALS_SMTP_URL (smtps:// for TLS; STARTTLS whenever offered)."""
    parts = urlsplit(settings.smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("APPROVALS_SMTP_URL must look like smtp://user:pass@host:port")
    import aiosmtplib  # imported on first use

    tls = parts.scheme == "smtps"
    await aiosmtplib.send(
        mail,
        hostname=parts.hostname,
        port=parts.port or (465 if tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=tls,
        start_tls=False if tls else None,
        timeout=settings.webhook_timeout,
    )


class Email(Channel):
    """A text and HTML email with personal one-time links; nothing to edit afterwards."""

    name = "email"
    label = "email"
    scheme = "mailto"
    contact = "email"

    def missing(self) -> str | None:
        return None if self.settings.smtp_url else "APPROVALS_SMTP_URL is not set"

    def hosts(self) -> list[str]:
        return [self.settings.smtp_url]

    def escape(self, text: Any) -> str:
        return html_escape(str(text))  # the text part is plain; the templates escape the HTML

    async def post(self, notice: Notice, approval: dict[str, Any], lead: Lead | None) -> Sent:
        tokens = None
        if notice.reviewer:
            tokens = make_links(
                await self.services.notifier.signer(),
                approval["id"],
                notice.reviewer,
                approval.get("argumentsDigest"),
            )
        await send(self.settings, message(approval, self.settings, notice.to, tokens, lead))
        return Sent(status_code=250)

    def failed(self, exc: Exception) -> Sent | None:
        from aiosmtplib import SMTPException  # imported on first use

        if isinstance(exc, (SMTPException, OSError, ValueError)):
            return Sent(error=f"{type(exc).__name__}: {exc}"[:500])
        return None
