"""The REST API: every route under every role, errors, filtering, the document."""

from datetime import UTC, datetime

import pytest

from backend.models import ADMIN_ONLY_FIELDS, Lab, Worker

WORKER = "{worker}"
LAB = "{lab}"

# Every route of the app, who may call it, and a body that passes validation.
# A route missing here fails test_every_route_is_listed: new routes must join.
ROUTES = [
    ("GET", "/healthz", "anyone", None),
    ("GET", "/readyz", "anyone", None),
    ("GET", "/api/openapi.json", "anyone", None),
    ("GET", "/", "anyone", None),
    ("GET", "/<path:path>", "anyone", None),
    (
        "POST",
        "/api/auth/login",
        "anyone",
        {"username": "bob", "password": "bob-password-12"},
    ),
    ("POST", "/api/auth/logout", "user", None),
    ("GET", "/api/auth/me", "user", None),
    ("GET", "/api/workers", "user", None),
    ("GET", f"/api/workers/{WORKER}", "user", None),
    ("GET", f"/api/workers/{WORKER}/labs", "user", None),
    ("GET", "/api/workers/events", "user", None),
    ("GET", "/api/workers/ws", "user", None),
    ("GET", f"/api/workers/{WORKER}/metrics", "user", None),
    ("POST", f"/api/workers/{WORKER}/refresh", "user", None),
    ("POST", "/api/workers", "admin", {"name": "new", "region": "us-east-1"}),
    ("POST", "/api/workers/import", "admin", {"region": "us-east-1"}),
    ("POST", f"/api/workers/{WORKER}/start", "admin", None),
    ("POST", f"/api/workers/{WORKER}/stop", "admin", None),
    ("DELETE", f"/api/workers/{WORKER}", "admin", None),
    ("PUT", f"/api/workers/{WORKER}/monitoring", "admin", {"enabled": True}),
    (
        "POST",
        f"/api/workers/{WORKER}/labs/{LAB}/<any(start, stop, wipe):verb>",
        "admin",
        None,
    ),
    ("GET", "/metrics", "anyone", None),
]


def _rule_of(path: str) -> str:
    return path.replace(WORKER, "<worker_id>").replace(LAB, "<lab_id>")


def _concrete(path: str, fleet) -> str:
    return (
        path.replace(WORKER, fleet["running"])
        .replace(LAB, "lab-1")
        .replace("<path:path>", "workers/abc")
        .replace("<any(start, stop, wipe):verb>", "start")
    )


@pytest.fixture
def fleet(app):
    """Three workers with every field filled, and a lab."""
    now = datetime.now(UTC)
    ids = {}
    with app.app_context():
        for name, status, region in [
            ("alpha", "running", "us-east-1"),
            ("bravo", "stopped", "us-east-1"),
            ("charlie", "running", "eu-west-1"),
        ]:
            worker = Worker(
                name=name,
                region=region,
                status=status,
                aws_instance_id=f"i-{name}",
                private_ip="10.0.0.5",
                public_ip="203.0.113.5",
                ami_id="ami-123",
                ami_name="CML-2.9.0",
                aws_tags={"Name": name},
                cml_license_smart_account="Acme",
                cml_license_virtual_account="Labs",
                cml_labs_count=3,
                last_error={"source": "cml", "message": "timed out", "at": now},
                ec2_checked_at=now,
            ).save()
            ids[name if name != "alpha" else "running"] = str(worker.pk)
        Lab(
            worker_id=ids["running"],
            lab_id="lab-1",
            title="OSPF",
            state="STARTED",
            node_count=4,
            link_count=3,
        ).save()
    return ids


def test_every_route_is_listed(app):
    served = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    listed = {(method, _rule_of(path)) for method, path, _, _ in ROUTES}

    assert served == listed


@pytest.mark.parametrize(("method", "path", "role", "body"), ROUTES)
@pytest.mark.parametrize("caller", ["anonymous", "user", "admin"])
def test_route_enforces_its_role(request, fleet, method, path, role, body, caller):
    client = request.getfixturevalue(caller)
    response = client.request(method, _concrete(path, fleet), json=body)

    allowed = (
        role == "anyone" or caller == "admin" or (role == "user" and caller == "user")
    )
    if allowed:
        assert response.status_code not in (401, 403), response.get_json()
    elif caller == "anonymous":
        assert response.status_code == 401
        assert response.get_json()["error"] == "unauthorized"
    else:
        assert response.status_code == 403
        assert response.get_json()["error"] == "forbidden"


GUARDED = [route for route in ROUTES if route[2] != "anyone"]


@pytest.mark.parametrize(("method", "path", "role", "body"), GUARDED)
@pytest.mark.parametrize("caller", ["anonymous", "user"])
def test_role_is_checked_before_the_input(
    request, fleet, method, path, role, body, caller
):
    """A caller without the role learns nothing from its input: malformed query
    and body get the same 401 or 403 as well-formed ones."""
    if caller == "user" and role == "user":
        pytest.skip("the user may call this route")
    client = request.getfixturevalue(caller)
    if caller == "user":
        client.csrf = ""  # and before the CSRF token, too
    response = client.request(
        method,
        _concrete(path, fleet) + "?since=yesterday&step=-1&status=bogus",
        json={"unexpected": ["field"], "region": 7},
    )

    assert response.status_code == (401 if caller == "anonymous" else 403)


def test_fleet_lists_workers_with_last_event_id(user, fleet):
    body = user.get("/api/workers").get_json()

    assert [w["name"] for w in body["workers"]] == ["alpha", "bravo", "charlie"]
    assert body["last_event_id"] == ""


def test_fleet_filters_by_status_and_region(user, fleet):
    running = user.get("/api/workers?status=running").get_json()["workers"]
    europe = user.get("/api/workers?region=eu-west-1&status=running").get_json()

    assert {w["name"] for w in running} == {"alpha", "charlie"}
    assert [w["name"] for w in europe["workers"]] == ["charlie"]


def test_fleet_refuses_an_unknown_status(user, fleet):
    response = user.get("/api/workers?status=sleeping")

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "validation_error"
    assert "status" in body["message"]
    assert "details" in body


def test_user_never_receives_admin_only_fields(user, fleet):
    fleet_view = user.get("/api/workers").get_json()["workers"]
    one = user.get(f"/api/workers/{fleet['running']}").get_json()

    for worker in [*fleet_view, one]:
        assert not ADMIN_ONLY_FIELDS & worker.keys()
        assert worker["public_ip"] == "203.0.113.5"


def test_admin_receives_every_field(admin, fleet):
    worker = admin.get(f"/api/workers/{fleet['running']}").get_json()

    assert ADMIN_ONLY_FIELDS <= worker.keys()
    assert worker["aws_instance_id"] == "i-alpha"
    assert worker["last_error"]["message"] == "timed out"
    for name in Worker._fields:
        assert name in worker


def test_worker_times_are_iso_8601(admin, fleet):
    worker = admin.get(f"/api/workers/{fleet['running']}").get_json()

    assert datetime.fromisoformat(worker["ec2_checked_at"]).tzinfo is not None


def test_unknown_worker_is_404(user, fleet):
    for path in ["/api/workers/nope", "/api/workers/64b7f0000000000000000000"]:
        response = user.get(path)
        assert response.status_code == 404
        assert response.get_json()["error"] == "not_found"


def test_worker_labs(user, fleet):
    labs = user.get(f"/api/workers/{fleet['running']}/labs").get_json()["labs"]

    assert labs == [
        {
            "worker_id": fleet["running"],
            "lab_id": "lab-1",
            "title": "OSPF",
            "description": None,
            "state": "STARTED",
            "owner_username": None,
            "node_count": 4,
            "link_count": 3,
            "created": None,
            "modified": None,
            "synced_at": None,
        }
    ]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('{"username": "alice"}', "application/json"),
        ('{"username": "alice", "password": "x", "otp": 1}', "application/json"),
        ('{"username": 5, "password": "x"}', "application/json"),
        ("username=alice", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_login_body_is_400_not_500(anonymous, data, content_type):
    response = anonymous.client.post(
        "/api/auth/login", data=data, content_type=content_type
    )

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] in {"validation_error", "bad_request"}
    assert body["message"]


def test_unknown_route_and_method_are_json(user):
    missing = user.get("/api/nothing-here")
    wrong_method = user.client.put("/api/workers")

    assert missing.status_code == 404
    assert missing.get_json()["error"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["error"] == "method_not_allowed"


def test_openapi_document_describes_the_routes(anonymous):
    spec = anonymous.get("/api/openapi.json").get_json()

    assert spec["openapi"].startswith("3.")
    assert "/api/workers" in spec["paths"]
    assert "/api/auth/login" in spec["paths"]
    login = spec["components"]["schemas"]["LoginIn"]
    assert set(login["required"]) == {"username", "password"}
    schemas = spec["components"]["schemas"]
    assert "aws_instance_id" in schemas["WorkerOut"]["properties"]
    assert "WorkerOut1" not in schemas
    one = spec["paths"]["/api/workers/{worker_id}"]["get"]["responses"]["200"]
    assert one["content"]["application/json"]["schema"]["$ref"].endswith("/WorkerOut")


def test_deep_link_serves_the_app_or_says_it_is_not_built(anonymous):
    response = anonymous.get("/workers/abc")

    assert response.status_code in (200, 503)
    if response.status_code == 200:
        assert b'<div id="app"' in response.data
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self' 'sha256-" in policy
    else:
        assert "make build" in response.get_json()["message"]


def test_every_response_refuses_sniffing_framing_and_referrers(anonymous, user):
    for response in (
        anonymous.get("/api/workers"),
        user.get("/api/workers"),
        anonymous.get("/healthz"),
        anonymous.get("/api/nothing-here"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_page_policy_allows_its_own_inline_script_and_nothing_else():
    import base64
    import hashlib

    from backend.app import content_security_policy

    page = (
        b"<html><head><script>window.early = 1</script>"
        b'<script type="module" src="/assets/app.js"></script></head></html>'
    )
    directives = content_security_policy(page).split("; ")
    policy = dict(directive.split(" ", 1) for directive in directives)

    digest = base64.b64encode(hashlib.sha256(b"window.early = 1").digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["object-src"] == "'none'"
