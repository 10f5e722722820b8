"""Sign-in, sessions, CSRF, the login rate limit and account changes."""

import pytest
from conftest import USER, ApiClient

from backend.models import AuditEntry, User


def test_login_returns_user_and_csrf_token_and_sets_a_safe_cookie(app, accounts):
    client = app.test_client()
    response = client.post(
        "/api/auth/login", json={"username": "alice", "password": "alice-password-1"}
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["user"] == {"username": "alice", "role": "admin"}
    assert len(body["csrf_token"]) >= 32
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_login_cookie_is_secure_outside_development(redis_url):
    from backend.app import close_app, create_app
    from backend.settings import load_settings

    settings = load_settings(
        {
            "SECRET_KEY": "a-production-secret-key",
            "REDIS_URL": redis_url,
            "MONGODB_URL": "mongomock://localhost/secure_cookie",
        },
        environment="production",
    )
    app = create_app(settings)
    close_app(app)

    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_password_is_stored_with_argon2(app, accounts):
    with app.app_context():
        stored = User.objects(username="alice").first().password_hash

    assert stored.startswith("$argon2id$")
    assert "alice-password-1" not in stored


def test_login_with_wrong_password_is_401_and_audited(app, accounts, anonymous):
    response = anonymous.post(
        "/api/auth/login", json={"username": "alice", "password": "nope"}
    )

    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    with app.app_context():
        entry = AuditEntry.objects(action="login").order_by("-at").first()
    assert (entry.actor, entry.outcome) == ("alice", "failed")


def test_me_returns_the_signed_in_user(user):
    response = user.get("/api/auth/me")

    assert response.status_code == 200
    assert response.get_json()["user"] == {"username": "bob", "role": "user"}
    assert response.get_json()["csrf_token"] == user.csrf


def test_logout_ends_the_session(user):
    assert user.post("/api/auth/logout").status_code == 204

    assert user.get("/api/auth/me").status_code == 401


def test_logout_without_csrf_token_is_refused(user):
    response = user.post("/api/auth/logout", headers={"X-CSRF-Token": ""})

    assert response.status_code == 403
    assert response.get_json()["error"] == "csrf_failed"
    assert user.get("/api/auth/me").status_code == 200


def test_wrong_csrf_token_is_refused(user):
    response = user.post("/api/auth/logout", headers={"X-CSRF-Token": "forged"})

    assert response.status_code == 403
    assert response.get_json()["error"] == "csrf_failed"


def test_login_is_rate_limited_per_username(app, accounts, anonymous):
    for _ in range(5):
        response = anonymous.post(
            "/api/auth/login", json={"username": "alice", "password": "bad"}
        )
        assert response.status_code == 401

    response = anonymous.post(
        "/api/auth/login", json={"username": "alice", "password": "alice-password-1"}
    )

    assert response.status_code == 429
    assert response.get_json()["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    with app.app_context():
        assert AuditEntry.objects(action="login", outcome="denied").count() >= 1


def test_login_rate_limit_per_username_leaves_others_alone(accounts, anonymous):
    for _ in range(6):
        anonymous.post("/api/auth/login", json={"username": "alice", "password": "x"})

    response = anonymous.post(
        "/api/auth/login", json={"username": "bob", "password": "bob-password-12"}
    )

    assert response.status_code == 200


def test_login_is_rate_limited_per_client_address(accounts, anonymous):
    statuses = [
        anonymous.post(
            "/api/auth/login", json={"username": f"guess{n}", "password": "x"}
        ).status_code
        for n in range(21)
    ]

    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429


def test_successful_logins_do_not_count_toward_the_limit(accounts, app):
    for _ in range(8):
        client = app.test_client()
        response = client.post(
            "/api/auth/login", json={"username": "bob", "password": "bob-password-12"}
        )
        assert response.status_code == 200


def test_removed_account_loses_its_session(app, user):
    with app.app_context():
        User.objects(username="bob").delete()

    assert user.get("/api/workers").status_code == 401


def test_removing_an_account_ends_its_sessions_and_is_audited(
    app, admin, user, redis_client
):
    from backend.auth import remove_user

    second = ApiClient(app, *USER)
    with app.app_context():
        ended = remove_user(redis_client, "bob")
        entry = AuditEntry.objects(action="user.remove").get()

    assert ended == 2
    assert user.get("/api/auth/me").status_code == 401
    assert second.get("/api/auth/me").status_code == 401
    assert admin.get("/api/auth/me").status_code == 200
    assert (entry.target, entry.outcome) == ("bob", "ok")
    login = {"username": "bob", "password": USER[1]}
    assert app.test_client().post("/api/auth/login", json=login).status_code == 401


def test_a_new_role_ends_the_sessions_and_the_next_sign_in_has_it(
    app, user, redis_client
):
    from backend.auth import change_role

    assert user.get("/api/auth/me").get_json()["user"]["role"] == "user"
    with app.app_context():
        assert change_role(redis_client, "bob", "admin") == 1

    assert user.get("/api/auth/me").status_code == 401
    again = ApiClient(app, *USER)
    assert again.get("/api/auth/me").get_json()["user"]["role"] == "admin"


def test_a_new_password_ends_the_sessions_and_replaces_the_old_one(
    app, user, redis_client
):
    from backend.auth import change_password

    with app.app_context():
        assert change_password(redis_client, "bob", "a-brand-new-password") == 1

    assert user.get("/api/auth/me").status_code == 401
    client = app.test_client()
    old = {"username": "bob", "password": USER[1]}
    new = {"username": "bob", "password": "a-brand-new-password"}
    assert client.post("/api/auth/login", json=old).status_code == 401
    assert client.post("/api/auth/login", json=new).status_code == 200


def test_the_only_admin_is_neither_removed_nor_demoted(app, admin, redis_client):
    from backend.auth import change_role, create_user, remove_user

    with app.app_context():
        for change in (
            lambda: remove_user(redis_client, "alice"),
            lambda: change_role(redis_client, "alice", "user"),
        ):
            with pytest.raises(ValueError, match="alice is the only admin"):
                change()
        assert User.objects.get(username="alice").role == "admin"
        assert admin.get("/api/auth/me").status_code == 200

        create_user("carol", "carol-password-1", "admin")
        change_role(redis_client, "alice", "user")
        assert User.objects.get(username="alice").role == "user"
