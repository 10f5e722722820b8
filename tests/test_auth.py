"""Sign-in, sessions, CSRF and the login rate limit."""

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
