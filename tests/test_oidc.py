"""Signing in with an OpenID Connect provider: authlib's test provider, real HTTP, Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_browser

from approvals.auth import oidc
from approvals.core.config import Settings
from approvals.dashboard.oidc_pages import FLOW_COOKIE
from conftest import Database, Server, free_port
from oidc_provider import Person, Provider

browser = test_browser.browser  # the module's Chromium (skipped without APPROVALS_TEST_CHROMIUM)
CAROL = Person("sub-carol-7f3a", {"preferred_username": "carol", "groups": ["reviewers"]})
BUTTON = "Sign in with Test IdP"
CALLBACK = "/login/oidc/callback"

Site = tuple[Server, Provider]


def in_chromium(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test as a browser test, skipped (saying why) without APPROVALS_TEST_CHROMIUM."""
    for mark in test_browser.pytestmark:
        test = mark(test)
    return test


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    """Start a provider and a service that signs in with it (``env``: more settings)."""
    started: list[Site] = []

    def make(db: Database, user: Person = CAROL, **env: str) -> Site:
        port = free_port()
        provider = Provider(f"http://127.0.0.1:{port}{CALLBACK}", user).start()
        settings = {
            "APPROVALS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "APPROVALS_OIDC_ISSUER": provider.issuer,
            "APPROVALS_OIDC_CLIENT_ID": provider.client.client_id,
            "APPROVALS_OIDC_CLIENT_SECRET": provider.client.client_secret,
            "APPROVALS_OIDC_PROVIDER_NAME": "Test IdP",
            **{key.upper(): value for key, value in env.items()},
        }
        server = Server(db, settings, tmp_path, port=port)
        started.append((server, provider))
        server.start()
        return server, provider

    yield make
    for server, provider in started:
        server.stop(signal.SIGKILL)
        provider.stop()


def users(db: Database) -> int:
    return int(db.scalar("SELECT count(*) FROM users"))


def audited(db: Database, kind: str) -> dict[str, Any]:
    """The detail of the last ``kind`` audit event in the log."""
    raw = db.scalar("SELECT detail FROM events WHERE type = :t ORDER BY id DESC", t=kind)
    assert raw is not None, f"no {kind} event in the log"
    return dict(json.loads(raw) if isinstance(raw, str) else raw)


def cli(db: Database, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "approvals", "users", *args],
        input="correct horse battery\n",
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, "APPROVALS_DATABASE_URL": db.url},
    )


def through_provider(server: Server, http: httpx.Client, next_path: str = "/") -> str:
    """Start a sign-in and follow it through the provider; the callback URL it sends back."""
    start = http.get(f"{server.base}/login/oidc", params={"next": next_path})
    assert start.status_code == 303, start.text
    assert FLOW_COOKIE in start.cookies
    at_provider = http.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    callback = at_provider.headers["location"]
    assert callback.startswith(f"{server.base}{CALLBACK}?code=")
    return str(callback)


def sign_in(browser: Any, server: Server, start: str = "/") -> tuple[Any, Any]:
    """A new Chromium context goes to ``start``, then through the provider and back."""
    page = browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
    page.goto(server.base + start)
    assert page.url.startswith(server.base + "/login")
    with page.expect_response(lambda answer: CALLBACK in answer.url) as callback:
        page.get_by_role("link", name=BUTTON).click()
    page.wait_for_load_state("load")
    return page, callback.value


# -- in Chromium ---------------------------------------------------------------------------


@in_chromium
def test_the_flow_in_chromium_creates_the_reviewer_once(
    browser: Any, sqlite_database: Database, make_site: Callable[..., Site]
) -> None:
    server, provider = make_site(sqlite_database, approvals_oidc_allowed_groups="ops,reviewers")
    page, callback = sign_in(browser, server, "/history")
    try:
        assert callback.status == 303
        assert page.url == server.base + "/history"  # `next` honoured
        assert page.get_by_role("heading", name="Decisions").is_visible()
        assert page.locator(".who span").inner_text() == "carol"
        assert provider.challenge_methods == ["S256"]  # PKCE
        db = sqlite_database
        assert users(db) == 1
        assert db.scalar("SELECT oidc_subject FROM users WHERE username = 'carol'") == CAROL.sub
        assert db.scalar("SELECT password_hash FROM users WHERE username = 'carol'") == "!"
        signed_in = audited(db, "audit.user.signed_in")
        assert signed_in["actor"] == "user:carol" and signed_in["method"] == "oidc"
        assert audited(db, "audit.user.created")["method"] == "oidc"
        # The callback URL again (a replayed state): refused with a page, still signed in.
        replay = page.goto(callback.url)
        assert replay.status == 400
        assert "already been used" in page.get_by_role("alert").inner_text()
        page.get_by_role("link", name="Back to sign-in").wait_for()
        # Signing out and in again reuses the reviewer, bound by subject, not by username.
        page.goto(server.base + "/")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(server.base + "/login")
    finally:
        page.context.close()
    provider.user = Person(CAROL.sub, {**CAROL.claims, "preferred_username": "carol.new"})
    page, callback = sign_in(browser, server)
    try:
        assert page.url == server.base + "/"
        assert page.locator(".who span").inner_text() == "carol"
        assert users(sqlite_database) == 1
    finally:
        page.context.close()


@in_chromium
def test_a_token_from_another_issuer_is_refused(
    browser: Any, sqlite_database: Database, make_site: Callable[..., Site]
) -> None:
    server, provider = make_site(sqlite_database)
    provider.token_issuer = "http://127.0.0.1:9/somebody-else"
    page, callback = sign_in(browser, server)
    try:
        assert callback.status == 401
        assert page.get_by_role("heading", name="Sign-in failed").is_visible()
        assert "issuer Approvals is not set up for" in page.get_by_role("alert").inner_text()
        assert "Traceback" not in page.content()
        assert page.locator(".who").count() == 0  # not signed in
        assert users(sqlite_database) == 0
    finally:
        page.context.close()


@in_chromium
def test_a_reviewer_outside_the_allowed_groups_gets_a_403_page(
    browser: Any, sqlite_database: Database, make_site: Callable[..., Site]
) -> None:
    outsider = Person("sub-mallory", {"preferred_username": "mallory", "groups": ["sales"]})
    server, _ = make_site(sqlite_database, outsider, approvals_oidc_allowed_groups="reviewers")
    page, callback = sign_in(browser, server)
    try:
        assert callback.status == 403
        assert page.get_by_role("heading", name="You cannot sign in here").is_visible()
        assert "not in a group that may use Approvals" in page.get_by_role("alert").inner_text()
        assert users(sqlite_database) == 0
        refused = audited(sqlite_database, "audit.user.sign_in_failed")
        assert refused["user"] == "mallory" and refused["method"] == "oidc"
        assert "not in APPROVALS_OIDC_ALLOWED_GROUPS" in refused["reason"]
    finally:
        page.context.close()


@in_chromium
def test_with_passwords_off_the_form_has_none_and_post_login_refuses(
    browser: Any, sqlite_database: Database, make_site: Callable[..., Site]
) -> None:
    cli(sqlite_database, "create", "alice", "--password-stdin")
    server, _ = make_site(sqlite_database, approvals_password_login="false")
    page = browser.new_page()
    try:
        page.goto(server.base + "/login")
        assert page.get_by_role("link", name=BUTTON).is_visible()
        assert page.get_by_label("Password").count() == 0
        assert page.locator("form[action='/login']").count() == 0
    finally:
        page.close()
    with server.client() as http:
        answer = http.post(
            "/login", data={"username": "alice", "password": "correct horse battery"}
        )
    assert answer.status_code == 403
    assert "Signing in with a password is turned off here." in answer.text
    assert "approvals_session" not in answer.cookies or not answer.cookies["approvals_session"]


@in_chromium
def test_a_disabled_reviewer_is_refused(
    browser: Any, sqlite_database: Database, make_site: Callable[..., Site]
) -> None:
    server, _ = make_site(sqlite_database)
    page, callback = sign_in(browser, server)
    page.context.close()
    assert callback.status == 303
    cli(sqlite_database, "disable", "carol")
    page, callback = sign_in(browser, server)
    try:
        assert callback.status == 403
        assert "disabled" in page.get_by_role("alert").inner_text()
    finally:
        page.context.close()


# -- over plain HTTP, on SQLite and PostgreSQL ---------------------------------------------


def test_a_state_is_used_once_even_with_the_cookie_replayed(
    database: Database, make_site: Callable[..., Site]
) -> None:
    server, provider = make_site(database)
    with httpx.Client(timeout=30) as http:
        callback = through_provider(server, http, "/events")
        flow = str(http.cookies.get(FLOW_COOKIE))
        done = http.get(callback)
        assert done.status_code == 303 and done.headers["location"] == "/events"
        assert done.cookies.get("approvals_session")
        assert not http.cookies.get(FLOW_COOKIE)  # the callback removed it
        again = http.get(callback)  # the same browser: no flow any more
    assert again.status_code == 400
    assert "already been used or has expired" in again.text
    with httpx.Client(timeout=30, cookies={FLOW_COOKIE: flow}) as thief:
        stolen = thief.get(callback)  # cookie and URL both replayed
    assert stolen.status_code == 400
    assert "already been used" in stolen.text
    assert provider.tokens_issued == 1
    assert users(database) == 1


def test_a_callback_for_another_state_is_refused(
    database: Database, make_site: Callable[..., Site]
) -> None:
    server, _ = make_site(database)
    with httpx.Client(timeout=30) as http:
        callback = through_provider(server, http)
        forged = httpx.URL(callback).copy_set_param("state", "not-the-state")
        answer = http.get(forged)
    assert answer.status_code == 400
    assert "does not belong to the sign-in this browser started" in answer.text
    assert users(database) == 0


def test_discovery_naming_another_issuer_stops_the_sign_in(
    database: Database, make_site: Callable[..., Site]
) -> None:
    server, provider = make_site(database)
    provider.discovery_issuer = "https://idp.example.com"
    with httpx.Client(timeout=30) as http:
        answer = http.get(f"{server.base}/login/oidc")
    assert answer.status_code == 502
    assert "does not identify itself as the issuer" in answer.text
    assert "text/html" in answer.headers["content-type"]
    assert FLOW_COOKIE not in answer.cookies


def test_a_local_reviewer_is_never_taken_over(
    database: Database, make_site: Callable[..., Site]
) -> None:
    cli(database, "create", "carol", "--password-stdin")
    server, _ = make_site(database)
    with httpx.Client(timeout=30) as http:
        answer = http.get(through_provider(server, http))
    assert answer.status_code == 403
    assert "already exists here and is not linked" in answer.text
    assert database.scalar("SELECT oidc_subject FROM users WHERE username = 'carol'") is None
    assert f"is not bound to {CAROL.sub!r}" in server.log_text()  # for the administrator
    with server.client() as http:  # her password still works
        page = http.get("/login")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        login = http.post(
            "/login",
            data={"username": "carol", "password": "correct horse battery", "csrf_token": csrf},
        )
    assert login.status_code == 303


def test_the_provider_saying_no_is_a_page(
    sqlite_database: Database, make_site: Callable[..., Site]
) -> None:
    server, _ = make_site(sqlite_database)
    with httpx.Client(timeout=30) as http:
        callback = httpx.URL(through_provider(server, http))
        state = callback.params["state"]
        denied = http.get(
            f"{server.base}{CALLBACK}",
            params={"error": "access_denied", "error_description": "<b>No</b>", "state": state},
        )
    assert denied.status_code == 403
    assert "The identity provider did not sign you in: &lt;b&gt;No&lt;/b&gt;" in denied.text


def test_without_a_provider_the_pages_say_so(
    sqlite_database: Database, make_server: Callable[..., Server]
) -> None:
    server = make_server(sqlite_database)
    with server.client() as http:
        assert "Sign in with" not in http.get("/login").text
        for path in ("/login/oidc", f"{CALLBACK}?code=x&state=y"):
            answer = http.get(path)
            assert answer.status_code == 404
            assert "not set up here" in answer.text


# -- rules without a server ----------------------------------------------------------------


def test_the_username_comes_from_the_claim_then_a_verified_email() -> None:
    settings = Settings(oidc_issuer="https://idp.example.com", oidc_client_id="x")
    named = oidc.identity(settings, {"sub": "1", "preferred_username": "dan", "groups": "ops"})
    assert (named.username, named.groups) == ("dan", ("ops",))
    by_email = oidc.identity(settings, {"sub": "2", "email": "eve@example.com"})
    assert by_email.username == "eve@example.com" and by_email.email == "eve@example.com"
    with pytest.raises(oidc.SignInError):
        oidc.identity(settings, {"sub": "3", "email": "x@example.com", "email_verified": False})
    custom = Settings(oidc_issuer="https://i", oidc_client_id="x", oidc_username_claim="upn")
    assert oidc.identity(custom, {"sub": "4", "upn": "fay", "email": "f@e.io"}).username == "fay"


def test_allowed_groups() -> None:
    anyone = Settings(oidc_issuer="https://i", oidc_client_id="x")
    some = Settings(oidc_issuer="https://i", oidc_client_id="x", oidc_allowed_groups=("a", "b"))
    who = oidc.Identity("1", "dan", None, ("b",))
    nobody = oidc.Identity("2", "eve", None, ())
    assert oidc.allowed(anyone, nobody) and oidc.allowed(some, who)
    assert not oidc.allowed(some, nobody)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APPROVALS_OIDC_ISSUER": "http://idp.example.com"}, "must be an https:// URL"),
        ({"APPROVALS_OIDC_ISSUER": "https://idp.example.com"}, "needs APPROVALS_OIDC_CLIENT_ID"),
        ({"APPROVALS_PASSWORD_LOGIN": "false"}, "otherwise nobody could sign in"),
        ({"APPROVALS_PASSWORD_LOGIN": "maybe"}, "must be true or false"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=message):
        Settings.from_env()


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVALS_OIDC_ISSUER", "http://127.0.0.1:9000/realms/x")
    monkeypatch.setenv("APPROVALS_OIDC_CLIENT_ID", "approvals")
    monkeypatch.setenv("APPROVALS_OIDC_ALLOWED_GROUPS", " ops, reviewers ,")
    monkeypatch.setenv("APPROVALS_PASSWORD_LOGIN", "off")
    settings = Settings.from_env()
    assert settings.oidc and not settings.password_login
    assert settings.oidc_allowed_groups == ("ops", "reviewers")
    assert oidc.redirect_uri(settings) == "http://127.0.0.1:8000/login/oidc/callback"
    assert oidc.provider_name(settings) == "127.0.0.1"
