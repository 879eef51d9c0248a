"""A small OpenID Provider for tests: authlib's server side on Flask, in a thread on loopback.

It serves discovery, its keys (an RSA key made per run), an authorize endpoint that signs in
``provider.user`` without asking, and a token endpoint issuing real RS256 ID tokens. It can
lie about its issuer (in discovery or in the tokens) for the tests that must refuse that.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from flask import Flask, jsonify
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from conftest import free_port

SCOPES = ("openid", "profile", "email", "groups")


@dataclass
class Person:
    """Who the provider signs in: the ``sub`` and the other claims of their ID token."""

    sub: str
    claims: dict[str, Any]


@dataclass
class Client(ClientMixin):
    """The one registered relying party (a confidential client)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic" if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    """An authorization code and what it was issued for."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    user: Person
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


class Provider:
    """The provider: start it, point the service at ``issuer``, change ``user`` between tests."""

    def __init__(self, redirect_uri: str, user: Person) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.discovery_issuer = self.issuer  # what discovery says: set another to lie
        self.token_issuer = self.issuer  # the ID tokens' iss: set another to lie
        self.client = Client("approvals-test", secrets.token_urlsafe(24), [redirect_uri])
        self.user = user
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4)})
        self.codes: dict[str, Code] = {}
        self.challenge_methods: list[str | None] = []  # of each authorization request
        self.tokens_issued = 0
        self.app = self._build()
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Provider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def _build(self) -> Flask:
        provider = self
        app = Flask(__name__)
        server = AuthorizationServer(
            app,
            query_client=lambda client_id: (
                provider.client if client_id == provider.client.client_id else None
            ),
            save_token=lambda token, request: None,
        )

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

            def save_authorization_code(self, code: str, request: Any) -> None:
                data = request.payload.data
                provider.challenge_methods.append(data.get("code_challenge_method"))
                provider.codes[code] = Code(
                    code=code,
                    client_id=request.client.get_client_id(),
                    redirect_uri=request.payload.redirect_uri,
                    scope=request.payload.scope,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    user=request.user,
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> Person:
                provider.tokens_issued += 1
                return authorization_code.user

        class OpenID(OpenIDCode):
            def exists_nonce(self, nonce: str, request: Any) -> bool:
                return any(code.nonce == nonce for code in provider.codes.values())

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.key

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": str(provider.key.kid)}

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {"iss": provider.token_issuer, "aud": [client.get_client_id()]}

            def generate_user_info(self, user: Person, scope: str) -> UserInfo:
                return UserInfo(sub=user.sub, **user.claims)

        server.register_grant(CodeGrant, [OpenID(require_nonce=True), CodeChallenge(True)])

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=provider.discovery_issuer,
                authorization_endpoint=f"{provider.issuer}/authorize",
                token_endpoint=f"{provider.issuer}/token",
                jwks_uri=f"{provider.issuer}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=list(SCOPES),
                token_endpoint_auth_methods_supported=["client_secret_basic"],
                code_challenge_methods_supported=["S256"],
            )

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(keys=[provider.key.as_dict(private=False)])

        @app.get("/authorize")
        def authorize() -> Any:
            try:
                grant = server.get_consent_grant(end_user=provider.user)
            except OAuth2Error as error:
                return jsonify(dict(error.get_body())), error.status_code
            # Nobody to ask in a test: the user consents at once.
            return server.create_authorization_response(grant=grant, grant_user=provider.user)

        @app.post("/token")
        def token() -> Any:
            return server.create_token_response()

        return app
