"""Settings read from the environment (``APPROVALS_*``)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from email.utils import parseaddr
from urllib.parse import urlsplit


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


def _schedule(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError as exc:
        raise SystemExit(f"{name} must be comma-separated seconds, got {raw!r}") from exc
    if any(value < 0 for value in values):
        raise SystemExit(f"{name} must not hold negative delays")
    return values


def _overrides(name: str) -> str:
    raw = os.environ.get(name, "")
    from approvals.core.outbound import parse_overrides

    try:
        parse_overrides(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be comma-separated name=address pairs: {exc}") from exc
    return raw


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"{name} must be true or false, got {raw!r}")


def _names(name: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(part.strip() for part in os.environ.get(name, "").split(",") if part.strip())


SQLITE_SYNCHRONOUS = ("full", "normal")


def sqlite_synchronous() -> str:
    """``APPROVALS_SQLITE_SYNCHRONOUS``: ``full`` (the default: an answered write survives
    power loss) or ``normal`` (faster; the last commits may be lost on power loss)."""
    raw = os.environ.get("APPROVALS_SQLITE_SYNCHRONOUS", "").strip().lower() or "full"
    if raw not in SQLITE_SYNCHRONOUS:
        raise SystemExit(f"APPROVALS_SQLITE_SYNCHRONOUS must be full or normal, got {raw!r}")
    return raw


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _issuer(raw: str) -> str:
    """The OIDC issuer as given (exactly: tokens must name it so); https, or http on loopback."""
    if not raw:
        return ""
    parts = urlsplit(raw)
    if not (parts.scheme == "https" and parts.hostname) and not (
        parts.scheme == "http" and _loopback(parts.hostname or "")
    ):
        raise SystemExit(
            f"APPROVALS_OIDC_ISSUER must be an https:// URL (http only on loopback), got {raw!r}"
        )
    return raw


def _subject(raw: str) -> str:
    """``APPROVALS_VAPID_SUBJECT``: how a push service reaches the operator (RFC 8292)."""
    if raw and not raw.startswith(("mailto:", "https://")):
        raise SystemExit(f"APPROVALS_VAPID_SUBJECT must be a mailto: or https:// URI, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads; docs/configuration.md lists them all."""

    database_url: str = "sqlite:///./approvals.db"
    keepalive_seconds: float = 15.0
    retry_ms: int = 3000
    max_body_bytes: int = 1024 * 1024
    broker_buffer: int = 10_000
    poll_seconds: float = 1.0
    database_pool_size: int = 10
    secret_key: str = ""
    webhook_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    webhook_timeout: float = 15.0
    webhook_failing_after: float = 900.0
    webhook_allowed: str = ""
    dns_overrides: str = ""
    connector_silence_seconds: float = 90.0
    connector_max_event_bytes: int = 1024 * 1024
    public_url: str = "http://127.0.0.1:8000"
    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_api_url: str = "https://slack.com/api/"
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    discord_public_key: str = ""  # the application's Ed25519 key (hex): signs interactions
    discord_bot_token: str = ""
    discord_api_url: str = "https://discord.com/api/v10"
    teams_app_id: str = ""  # the bot's Microsoft App ID: the audience of incoming JWTs
    teams_app_password: str = ""  # its client secret, for the outgoing calls' token
    teams_openid_url: str = "https://login.botframework.com/v1/.well-known/openidconfiguration"
    teams_login_url: str = "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
    teams_service_url: str = ""  # empty: learned from the bot's installation activity
    smtp_url: str = ""
    email_from: str = "approvals@localhost"
    vapid_private_key: str = ""  # Web Push: empty means generated once and kept in the database
    vapid_public_key: str = ""
    vapid_subject: str = ""  # empty: derived by vapid_contact()
    rate_limit: str = "off"
    max_streams_per_key: int = 0
    stats_exact_limit: int = 20_000
    trusted_proxies: str = ""
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_allowed_groups: tuple[str, ...] = ()
    oidc_username_claim: str = "preferred_username"
    oidc_groups_claim: str = "groups"
    oidc_scopes: str = "openid profile email"
    oidc_provider_name: str = ""
    password_login: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from ``APPROVALS_*`` environment variables."""
        sqlite_synchronous()  # refuse a bad value at start-up, not at the first connection
        return cls(
            database_url=os.environ.get("APPROVALS_DATABASE_URL") or cls.database_url,
            keepalive_seconds=_float("APPROVALS_KEEPALIVE_SECONDS", cls.keepalive_seconds),
            retry_ms=_int("APPROVALS_RETRY_MS", cls.retry_ms),
            max_body_bytes=_int("APPROVALS_MAX_BODY_BYTES", cls.max_body_bytes),
            broker_buffer=_int("APPROVALS_BROKER_BUFFER", cls.broker_buffer),
            poll_seconds=_float("APPROVALS_POLL_SECONDS", cls.poll_seconds),
            database_pool_size=_int("APPROVALS_DATABASE_POOL_SIZE", cls.database_pool_size),
            secret_key=os.environ.get("APPROVALS_SECRET_KEY", ""),
            webhook_schedule=_schedule("APPROVALS_WEBHOOK_SCHEDULE", cls.webhook_schedule),
            webhook_timeout=_float("APPROVALS_WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout),
            webhook_failing_after=_float(
                "APPROVALS_WEBHOOK_FAILING_AFTER_SECONDS", cls.webhook_failing_after
            ),
            webhook_allowed=os.environ.get("APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS", ""),
            dns_overrides=_overrides("APPROVALS_DNS_OVERRIDES"),
            connector_silence_seconds=_float(
                "APPROVALS_CONNECTOR_SILENCE_SECONDS", cls.connector_silence_seconds
            ),
            connector_max_event_bytes=_int(
                "APPROVALS_CONNECTOR_MAX_EVENT_BYTES", cls.connector_max_event_bytes
            ),
            public_url=(
                os.environ.get("APPROVALS_PUBLIC_URL")
                or os.environ.get("APPROVALS_URL")
                or cls.public_url
            ).rstrip("/"),
            slack_bot_token=os.environ.get("APPROVALS_SLACK_BOT_TOKEN", ""),
            slack_signing_secret=os.environ.get("APPROVALS_SLACK_SIGNING_SECRET", ""),
            slack_api_url=os.environ.get("APPROVALS_SLACK_API_URL") or cls.slack_api_url,
            pagerduty_url=os.environ.get("APPROVALS_PAGERDUTY_URL") or cls.pagerduty_url,
            discord_public_key=os.environ.get("APPROVALS_DISCORD_PUBLIC_KEY", "").strip(),
            discord_bot_token=os.environ.get("APPROVALS_DISCORD_BOT_TOKEN", "").strip(),
            discord_api_url=(
                os.environ.get("APPROVALS_DISCORD_API_URL") or cls.discord_api_url
            ).rstrip("/"),
            teams_app_id=os.environ.get("APPROVALS_TEAMS_APP_ID", "").strip(),
            teams_app_password=os.environ.get("APPROVALS_TEAMS_APP_PASSWORD", ""),
            teams_openid_url=os.environ.get("APPROVALS_TEAMS_OPENID_URL") or cls.teams_openid_url,
            teams_login_url=os.environ.get("APPROVALS_TEAMS_LOGIN_URL") or cls.teams_login_url,
            teams_service_url=os.environ.get("APPROVALS_TEAMS_SERVICE_URL", "").strip().rstrip("/"),
            smtp_url=os.environ.get("APPROVALS_SMTP_URL", ""),
            email_from=os.environ.get("APPROVALS_EMAIL_FROM") or cls.email_from,
            vapid_private_key=os.environ.get("APPROVALS_VAPID_PRIVATE_KEY", "").strip(),
            vapid_public_key=os.environ.get("APPROVALS_VAPID_PUBLIC_KEY", "").strip(),
            vapid_subject=_subject(os.environ.get("APPROVALS_VAPID_SUBJECT", "").strip()),
            rate_limit=os.environ.get("APPROVALS_RATE_LIMIT") or cls.rate_limit,
            max_streams_per_key=_int("APPROVALS_MAX_STREAMS_PER_KEY", cls.max_streams_per_key),
            stats_exact_limit=_int("APPROVALS_STATS_EXACT_LIMIT", cls.stats_exact_limit),
            trusted_proxies=os.environ.get("APPROVALS_TRUSTED_PROXIES", "").strip(),
            oidc_issuer=_issuer(os.environ.get("APPROVALS_OIDC_ISSUER", "").strip()),
            oidc_client_id=os.environ.get("APPROVALS_OIDC_CLIENT_ID", "").strip(),
            oidc_client_secret=os.environ.get("APPROVALS_OIDC_CLIENT_SECRET", ""),
            oidc_allowed_groups=_names("APPROVALS_OIDC_ALLOWED_GROUPS"),
            oidc_username_claim=os.environ.get("APPROVALS_OIDC_USERNAME_CLAIM", "").strip()
            or cls.oidc_username_claim,
            oidc_groups_claim=os.environ.get("APPROVALS_OIDC_GROUPS_CLAIM", "").strip()
            or cls.oidc_groups_claim,
            oidc_scopes=os.environ.get("APPROVALS_OIDC_SCOPES", "").strip() or cls.oidc_scopes,
            oidc_provider_name=os.environ.get("APPROVALS_OIDC_PROVIDER_NAME", "").strip(),
            password_login=_bool("APPROVALS_PASSWORD_LOGIN", cls.password_login),
        )._checked()

    @property
    def vapid_contact(self) -> str:
        """The ``sub`` of Web Push's VAPID claims: ``APPROVALS_VAPID_SUBJECT``, else
        ``mailto:`` and the address of ``APPROVALS_EMAIL_FROM``, else the public URL."""
        if self.vapid_subject:
            return self.vapid_subject
        address = parseaddr(self.email_from)[1]
        return f"mailto:{address}" if "@" in address else self.public_url

    @property
    def oidc(self) -> bool:
        """Tell whether reviewers may sign in with an OpenID Connect provider."""
        return bool(self.oidc_issuer)

    def _checked(self) -> Settings:
        """Refuse settings that cannot work together (at start-up, not at the first sign-in)."""
        if self.oidc_issuer and not self.oidc_client_id:
            raise SystemExit("APPROVALS_OIDC_ISSUER needs APPROVALS_OIDC_CLIENT_ID as well")
        if "openid" not in self.oidc_scopes.split():
            raise SystemExit("APPROVALS_OIDC_SCOPES must include openid")
        if self.vapid_public_key and not self.vapid_private_key:
            raise SystemExit(
                "APPROVALS_VAPID_PUBLIC_KEY needs APPROVALS_VAPID_PRIVATE_KEY as well "
                "(or set neither: the service then makes its own pair)"
            )
        if not self.password_login and not self.oidc_issuer:
            raise SystemExit(
                "APPROVALS_PASSWORD_LOGIN=false needs APPROVALS_OIDC_ISSUER: "
                "otherwise nobody could sign in"
            )
        return self
