"""VAPID (RFC 8292): the service's key pair for Web Push, and the header that names it.

The pair is ``APPROVALS_VAPID_PRIVATE_KEY`` (with ``APPROVALS_VAPID_PUBLIC_KEY``, which
must match it) when set. Otherwise one is generated on first use and kept in
``service_secrets`` beside the service's other generated secrets (stored the same way), so
every process and every restart signs with the same key: browsers subscribe to exactly
that key, and a new one would silence every device.
"""

from __future__ import annotations

import base64
import binascii
import time
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid.jwt import sign
from sqlalchemy.ext.asyncio import AsyncEngine

from approvals.core.config import Settings
from approvals.core.secretbox import stored

STORED = "vapid_private_key"  # its name in service_secrets
TOKEN_SECONDS = 12 * 3600  # a token's lifetime (push services refuse more than 24 h)
REUSE_MARGIN = 3600  # a token is signed again once it has less than this left


def b64url(data: bytes) -> str:
    """Unpadded base64url, as Web Push writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Bytes from base64url, padded or not; ValueError for anything else."""
    if not text.isascii() or any(c in text for c in "+/ \n\t"):
        raise ValueError("is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64url") from exc


def generate() -> str:
    """A new private key: the raw 32-byte P-256 scalar, base64url (what web-push tools print)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def load(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from a raw base64url scalar, base64url DER, or PEM;
    ValueError when it is none of them."""
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            raw = unb64url(text.strip())
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except (TypeError, ValueError) as exc:
        raise ValueError("is not a P-256 private key (raw base64url, DER or PEM)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("is not a P-256 (prime256v1) private key")
    return key


def public_text(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as browsers take it (``applicationServerKey``): the uncompressed
    point, base64url."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def configured(settings: Settings) -> ec.EllipticCurvePrivateKey | None:
    """The key pair the settings give (None: use the stored one); SystemExit at start-up
    when the private key cannot be read or the public key is not its own."""
    if not settings.vapid_private_key:
        return None
    try:
        key = load(settings.vapid_private_key)
    except ValueError as exc:
        raise SystemExit(f"APPROVALS_VAPID_PRIVATE_KEY {exc}") from exc
    given = settings.vapid_public_key
    if given and given.rstrip("=") != public_text(key):
        raise SystemExit(
            "APPROVALS_VAPID_PUBLIC_KEY is not the public half of APPROVALS_VAPID_PRIVATE_KEY"
        )
    return key


def origin(url: str) -> str:
    """The ``aud`` of a push endpoint: its scheme, host and port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class Keys:
    """The service's VAPID key (read or made once per process) and the signed tokens it
    reuses per push service while they are fresh."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key = configured(settings)
        self._tokens: dict[str, tuple[float, str]] = {}  # audience -> (expiry, header)

    async def key(self, engine: AsyncEngine) -> ec.EllipticCurvePrivateKey:
        """The private key: the configured one, or the stored one (made on first use)."""
        if self._key is None:
            async with engine.begin() as conn:
                text = await conn.run_sync(lambda sync: stored(sync, STORED, generate))
            self._key = load(text)
        return self._key

    async def public(self, engine: AsyncEngine) -> str:
        """The public key, base64url, for ``PushManager.subscribe``."""
        return public_text(await self.key(engine))

    async def authorization(self, engine: AsyncEngine, endpoint: str) -> str:
        """The ``Authorization`` header for a push to ``endpoint``:
        ``vapid t=<ES256 JWT with aud, exp, sub>, k=<public key>``."""
        audience = origin(endpoint)
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is not None and cached[0] - now > REUSE_MARGIN:
            return cached[1]
        key = await self.key(engine)
        expiry = int(now) + TOKEN_SECONDS
        claims = {"aud": audience, "exp": expiry, "sub": self.settings.vapid_contact}
        header = f"vapid t={sign(claims, key)}, k={public_text(key)}"
        if len(self._tokens) > 1000:  # push services are few; never let this grow unbounded
            self._tokens.clear()
        self._tokens[audience] = (expiry, header)
        return header
