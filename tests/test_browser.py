"""The web app in Chromium: sign-in, live cards and modal, roles, jobs, reconnection.

The app is served from a thread of this process (``browser_fixtures.LiveServer``),
so each test seeds workers in mongomock and publishes events on the test Redis
as a refresh would, then checks what a person would see, found by role, label
and text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_fixtures import (
    VIEWPORT,
    LiveServer,
    change_worker,
    launch_chromium,
    seed_worker,
)
from conftest import ADMIN, USER
from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    Request,
    Response,
    expect,
    sync_playwright,
)
from rq import SimpleWorker

from backend import jobs
from backend.auth import change_role
from backend.refresh import refresh

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def server(app, accounts) -> Iterator[LiveServer]:
    live = LiveServer(app).start()
    yield live
    live.stop()
    # The hub's threads would otherwise outlive the test's Redis and MongoDB.
    app.extensions["cmlfleet.hub"].stop()


@pytest.fixture
def page(chromium: Browser, server: LiveServer) -> Iterator[Page]:
    """A page of its own; at the end, nothing it ran was refused by the
    Content-Security-Policy (Chromium reports each refusal on the console)."""
    context = chromium.new_context(viewport=VIEWPORT, base_url=server.base)
    context.set_default_timeout(10_000)
    page = context.new_page()
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert refused == []


def sign_in(page: Page, account: tuple[str, str]) -> None:
    username, password = account
    page.goto("/")
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def live(page: Page) -> Locator:
    """The header's connection indicator while it says "Live" (and nothing else)."""
    return page.get_by_role("status").filter(has_text=re.compile(r"^\s*Live\s*$"))


def wait_live(page: Page) -> None:
    expect(live(page)).to_be_visible()


def card(page: Page, name: str) -> Locator:
    return page.get_by_role("list", name="Workers").get_by_role(
        "article", name=name, exact=True
    )


def fact(scope: Locator, label: str) -> Locator:
    """The value shown beside ``label`` in a list of facts."""
    term = scope.get_by_role("term").filter(has_text=re.compile(rf"^{label}$"))
    return term.locator("xpath=following-sibling::dd[1]")


def status_badge(scope: Locator, name: str) -> Locator:
    """The status shown beside a worker's name, on its card or in its modal."""
    heading = scope.get_by_role("heading", name=name, exact=True)
    return heading.locator("xpath=following-sibling::*[1]")


def notifications(page: Page) -> Locator:
    return page.get_by_role("region", name="Notifications")


def lab_row(dialog: Locator, title: str) -> Locator:
    rows = dialog.get_by_role("table", name="Labs").get_by_role("row")
    return rows.filter(has=dialog.page.get_by_role("rowheader", name=title, exact=True))


def answer_to(method: str, path: str) -> Callable[[Response], bool]:
    """A predicate for ``page.expect_response``: the app's answer to one call."""

    def matches(response: Response) -> bool:
        request = response.request
        return request.method == method and urlsplit(response.url).path == path

    return matches


def open_worker(page: Page, name: str) -> tuple[Locator, str]:
    """Open a worker's modal from its card; return the dialog and the worker's id."""
    card(page, name).get_by_role("link", name=name).click()
    dialog = page.get_by_role("dialog", name=name)
    expect(dialog.get_by_role("heading", name="EC2")).to_be_visible()
    return dialog, urlsplit(page.url).path.rsplit("/", 1)[-1]


def mark_page(page: Page) -> None:
    """Leave a mark in the page's globals; a reload or navigation wipes it."""
    page.evaluate("window.__marker = 'still here'")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__marker") == "still here"


def run_jobs(redis_client) -> None:
    SimpleWorker([jobs.queue(redis_client)], connection=redis_client).work(burst=True)


def test_sign_in_refuses_a_wrong_password_then_shows_the_fleet(app, page):
    with app.app_context():
        for name in ("alpha", "bravo", "charlie"):
            seed_worker(name)

    page.goto("/")
    page.get_by_role("textbox", name="Username").fill(ADMIN[0])
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_role("list", name="Workers")).to_have_count(0)

    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Sign in").click()

    workers = page.get_by_role("list", name="Workers")
    expect(workers.get_by_role("article")).to_have_count(3)
    for name in ("alpha", "bravo", "charlie"):
        expect(card(page, name)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)


def test_page_load_asks_for_the_fleet_once_and_only_when_signed_in(app, page):
    with app.app_context():
        alpha = seed_worker("alpha")
        seed_worker("bravo")
    fleet_requests: list[str] = []

    def note(request: Request) -> None:
        if urlsplit(request.url).path == "/api/workers":
            fleet_requests.append(request.url)

    page.on("request", note)

    page.goto(f"/workers/{alpha.pk}")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert "redirect=" in page.url
    assert fleet_requests == []

    page.get_by_role("textbox", name="Username").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("dialog", name="alpha")).to_be_visible()
    expect(
        page.get_by_role("list", name="Workers").get_by_role("article")
    ).to_have_count(2)
    wait_live(page)
    assert len(fleet_requests) == 1

    # A reload takes the fleet that the page asked for before its code had loaded.
    page.reload()
    expect(page.get_by_role("dialog", name="alpha")).to_be_visible()
    expect(card(page, "bravo")).to_be_visible()
    wait_live(page)
    assert len(fleet_requests) == 2


def test_card_follows_events_without_a_reload(app, page, redis_client):
    with app.app_context():
        alpha = seed_worker("alpha", cloudwatch_cpu_utilization=12.0)
        seed_worker("bravo", cloudwatch_cpu_utilization=12.0)
    sign_in(page, USER)
    wait_live(page)
    mark_page(page)
    cpu = card(page, "alpha").get_by_role("meter", name="CPU")
    expect(cpu).to_have_attribute("aria-valuenow", "12")

    with app.app_context():
        change_worker(
            redis_client,
            alpha,
            "worker.cloudwatch_metrics.updated",
            cloudwatch_cpu_utilization=87.0,
        )
        change_worker(redis_client, alpha, "worker.status.changed", status="stopped")

    expect(cpu).to_have_attribute("aria-valuenow", "87")
    expect(card(page, "alpha")).to_contain_text("Stopped")
    expect(card(page, "bravo").get_by_role("meter", name="CPU")).to_have_attribute(
        "aria-valuenow", "12"
    )
    assert_not_reloaded(page)


KEEP_NODE = "element => { element.__kept = true }"
NODE_KEPT = "element => element.__kept === true"


@pytest.mark.parametrize("view", ["Cards", "Table"])
def test_events_keep_the_scroll_position_and_redraw_in_place(
    app, page, redis_client, view
):
    """Scrolled halfway down a long fleet, events for workers above, at and below
    the viewport change their values in place: the page stays where it was and the
    elements showing them are the same ones, not redrawn from scratch."""
    names = [f"worker-{number:02}" for number in range(60)]
    with app.app_context():
        workers = {name: seed_worker(name) for name in names}
    sign_in(page, USER)
    wait_live(page)
    page.get_by_role("button", name=view, exact=True).click()
    if view == "Cards":
        item = lambda name: card(page, name)  # noqa: E731
    else:
        table = page.get_by_role("table", name="Workers")
        item = lambda name: table.get_by_role("row").filter(  # noqa: E731
            has=page.get_by_role("rowheader", name=name, exact=True)
        )
    watched = ("worker-02", "worker-30", "worker-58")
    item("worker-30").scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, 100)")
    for name in watched:
        item(name).element_handle().evaluate(KEEP_NODE)  # type: ignore[union-attr]
    mark_page(page)
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 800

    with app.app_context():
        for name in watched:
            change_worker(
                redis_client,
                workers[name],
                "worker.cml_metrics.updated",
                cml_nodes_running=17,
                cml_labs_count=9,
            )
        change_worker(
            redis_client, workers["worker-01"], "worker.status.changed", status="failed"
        )

    for name in watched:
        expect(item(name)).to_contain_text("17")
    expect(item("worker-01")).to_contain_text("Failed")
    assert page.evaluate("window.scrollY") == scrolled
    for name in watched:
        assert item(name).element_handle().evaluate(NODE_KEPT)  # type: ignore[union-attr]
    assert_not_reloaded(page)


def test_open_worker_modal_follows_events_for_its_worker(app, page, redis_client):
    with app.app_context():
        alpha = seed_worker("alpha", cml_version="2.9.0", cml_nodes_running=8)
        bravo = seed_worker("bravo", cml_version="2.9.0")
    sign_in(page, USER)
    wait_live(page)
    card(page, "alpha").get_by_role("link", name="alpha").click()
    dialog = page.get_by_role("dialog", name="alpha")
    expect(dialog).to_contain_text("8 of 20")
    mark_page(page)

    with app.app_context():
        change_worker(
            redis_client,
            bravo,
            "worker.cml_metrics.updated",
            cml_version="2.8.1",
        )
        change_worker(
            redis_client,
            alpha,
            "worker.cml_metrics.updated",
            cml_version="2.9.1",
            cml_nodes_running=14,
        )

    expect(dialog).to_contain_text("14 of 20")
    expect(dialog).to_contain_text("2.9.1")
    expect(dialog).not_to_contain_text("2.8.1")
    assert page.url.endswith(f"/workers/{alpha.pk}")
    assert_not_reloaded(page)


def test_admin_controls_are_for_admins_only(app, chromium, server):
    with app.app_context():
        seed_worker("alpha")

    seen = {}
    for role, account in (("user", USER), ("admin", ADMIN)):
        context = chromium.new_context(viewport=VIEWPORT, base_url=server.base)
        page = context.new_page()
        sign_in(page, account)
        expect(card(page, "alpha")).to_be_visible()
        launch = page.get_by_role("button", name="Launch worker").count()
        imports = page.get_by_role("button", name="Import instances").count()
        card(page, "alpha").get_by_role("link", name="alpha").click()
        dialog = page.get_by_role("dialog", name="alpha")
        expect(dialog.get_by_role("heading", name="CML")).to_be_visible()
        seen[role] = {
            "launch": launch,
            "import": imports,
            "actions": dialog.get_by_role("group", name="Worker actions").count(),
            "terminate": dialog.get_by_role(
                "button", name="Terminate", exact=True
            ).count(),
        }
        context.close()

    assert seen["user"] == {"launch": 0, "import": 0, "actions": 0, "terminate": 0}
    assert seen["admin"] == {"launch": 1, "import": 1, "actions": 1, "terminate": 1}


def test_phone_screen_and_keyboard_only(app, chromium, server):
    """On a phone's width nothing scrolls sideways, and a worker opens and closes
    from the keyboard alone, focus going back where it was."""
    with app.app_context():
        for name in ("alpha", "bravo", "charlie"):
            seed_worker(name, cml_version="2.9.0", cml_nodes_running=8)
    context = chromium.new_context(
        viewport={"width": 390, "height": 844}, base_url=server.base, has_touch=True
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_in(page, USER)
        wait_live(page)
        expect(card(page, "charlie")).to_be_visible()
        overflow = "document.documentElement.scrollWidth - innerWidth"
        assert page.evaluate(overflow) == 0
        boxes = [card(page, name).bounding_box() for name in ("alpha", "bravo")]
        assert all(box is not None and box["width"] <= 390 for box in boxes)
        # One card per row: the second sits below the first.
        assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"]  # type: ignore[index]

        link = card(page, "bravo").get_by_role("link", name="bravo")
        for _ in range(60):
            page.keyboard.press("Tab")
            if link.evaluate("element => element === document.activeElement"):
                break
        else:
            pytest.fail("Tab never reached the link of worker bravo")
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="bravo")
        expect(dialog.get_by_role("heading", name="CML")).to_be_visible()
        assert page.evaluate(overflow) == 0
        box = dialog.bounding_box()
        assert box is not None and box["x"] >= 0 and box["width"] <= 390

        # Tab stays inside the open dialog.
        inside = "element => element.contains(document.activeElement)"
        for _ in range(15):
            page.keyboard.press("Tab")
            assert dialog.evaluate(inside)

        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        expect(link).to_be_focused()
        assert urlsplit(page.url).path == "/"
    finally:
        context.close()


def test_a_new_role_signs_the_open_page_out_and_the_next_sign_in_has_it(
    app, page, redis_client
):
    with app.app_context():
        seed_worker("alpha")
    sign_in(page, USER)
    wait_live(page)
    expect(page.get_by_role("button", name="Launch worker")).to_have_count(0)

    with app.app_context():
        change_role(redis_client, USER[0], "admin")

    # The stream notices at its next heartbeat (1 s here) and the page signs out.
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    sign_in(page, USER)
    expect(page.get_by_role("button", name="Launch worker")).to_be_visible()


def test_admin_enables_detailed_monitoring(app, fleet, page, redis_client):
    fleet.launch("trainer")
    with app.app_context():
        refresh(fleet.ctx)
    sign_in(page, ADMIN)
    wait_live(page)
    card(page, "trainer").get_by_role("link", name="trainer").click()
    dialog = page.get_by_role("dialog", name="trainer")
    actions = dialog.get_by_role("group", name="Worker actions")
    monitoring = fact(dialog.get_by_role("region", name="EC2"), "Detailed monitoring")
    expect(monitoring).to_have_text("Disabled")

    enable = actions.get_by_role("button", name="Enable Detailed Monitoring")
    with page.expect_response(lambda r: r.url.endswith("/monitoring")) as answer:
        enable.click()
    assert answer.value.status == 202
    expect(enable).to_have_attribute("aria-busy", "true")
    with app.app_context():
        run_jobs(redis_client)

    # EC2 answers with the transition, and the button keeps spinning until the
    # next refresh reads where it ended.
    expect(monitoring).to_have_text("Pending")
    expect(enable).to_have_attribute("aria-busy", "true")
    with app.app_context():
        refresh(fleet.ctx)

    expect(monitoring).to_have_text("Enabled")
    disable = actions.get_by_role("button", name="Disable Detailed Monitoring")
    expect(disable).to_be_enabled()
    expect(enable).to_have_count(0)
    expect(page.get_by_role("region", name="Notifications")).to_contain_text(
        "Detailed monitoring enabled on trainer."
    )


def test_admin_stops_and_starts_a_worker(app, fleet, page, redis_client):
    fleet.launch("trainer")
    with app.app_context():
        refresh(fleet.ctx)
    sign_in(page, ADMIN)
    wait_live(page)
    dialog, worker_id = open_worker(page, "trainer")
    actions = dialog.get_by_role("group", name="Worker actions")
    start = actions.get_by_role("button", name="Start", exact=True)
    stop = actions.get_by_role("button", name="Stop", exact=True)
    state = fact(dialog.get_by_role("region", name="EC2"), "State")
    expect(status_badge(dialog, "trainer")).to_have_text("Running")
    expect(start).to_be_disabled()

    # Stopping asks for no confirmation: the worker can be started again.
    with page.expect_response(
        answer_to("POST", f"/api/workers/{worker_id}/stop")
    ) as answer:
        stop.click()
    assert answer.value.status == 202
    expect(stop).to_have_attribute("aria-busy", "true")
    with app.app_context():
        run_jobs(redis_client)

    expect(status_badge(dialog, "trainer")).to_have_text("Stopping")
    expect(status_badge(card(page, "trainer"), "trainer")).to_have_text("Stopping")
    expect(state).to_have_text("Stopping")
    expect(stop).to_have_attribute("aria-busy", "true")
    with app.app_context():
        refresh(fleet.ctx)

    expect(status_badge(dialog, "trainer")).to_have_text("Stopped")
    expect(status_badge(card(page, "trainer"), "trainer")).to_have_text("Stopped")
    expect(state).to_have_text("Stopped")
    expect(notifications(page)).to_contain_text("Worker trainer stopped.")
    expect(stop).to_be_disabled()
    expect(stop).not_to_have_attribute("aria-busy", "true")

    with page.expect_response(
        answer_to("POST", f"/api/workers/{worker_id}/start")
    ) as answer:
        start.click()
    assert answer.value.status == 202
    expect(start).to_have_attribute("aria-busy", "true")
    with app.app_context():
        run_jobs(redis_client)

    expect(status_badge(dialog, "trainer")).to_have_text("Pending")
    expect(start).to_have_attribute("aria-busy", "true")
    with app.app_context():
        refresh(fleet.ctx)

    expect(status_badge(dialog, "trainer")).to_have_text("Running")
    expect(status_badge(card(page, "trainer"), "trainer")).to_have_text("Running")
    expect(state).to_have_text("Running")
    expect(notifications(page)).to_contain_text("Worker trainer is running.")
    expect(start).to_be_disabled()
    expect(stop).to_be_enabled()


def test_admin_terminates_a_worker_after_confirming(app, fleet, page, redis_client):
    (instance_id,) = fleet.launch("doomed")
    fleet.launch("keeper")
    with app.app_context():
        refresh(fleet.ctx)
    sign_in(page, ADMIN)
    wait_live(page)
    dialog, worker_id = open_worker(page, "doomed")
    actions = dialog.get_by_role("group", name="Worker actions")
    terminate = actions.get_by_role("button", name="Terminate", exact=True)

    terminate.click()
    confirm = page.get_by_role("alertdialog", name="Terminate doomed?")
    expect(confirm).to_contain_text(f"instance {instance_id} of worker doomed")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    expect(status_badge(dialog, "doomed")).to_have_text("Running")

    terminate.click()
    with page.expect_response(
        answer_to("DELETE", f"/api/workers/{worker_id}")
    ) as answer:
        confirm.get_by_role("button", name="Terminate doomed").click()
    assert answer.value.status == 202
    expect(confirm).to_have_count(0)
    expect(terminate).to_have_attribute("aria-busy", "true")
    with app.app_context():
        run_jobs(redis_client)

    # EC2 answers "shutting-down"; the page shows the worker as gone from then on.
    expect(status_badge(dialog, "doomed")).to_have_text("Terminated")
    expect(notifications(page)).to_contain_text("Worker doomed terminated.")
    with app.app_context():
        refresh(fleet.ctx)

    expect(fact(dialog.get_by_role("region", name="EC2"), "State")).to_have_text(
        "Terminated"
    )
    for name in ("Start", "Stop", "Enable Detailed Monitoring", "Terminate"):
        expect(actions.get_by_role("button", name=name, exact=True)).to_be_disabled()
    expect(dialog.get_by_role("button", name="Refresh now")).to_be_disabled()
    expect(
        dialog.get_by_role("button", name=re.compile(r"^(Start|Stop|Wipe) lab "))
    ).to_have_count(0)
    dialog.get_by_role("button", name="Close").click()

    # Terminated workers stay in the fleet under their own status.
    expect(status_badge(card(page, "doomed"), "doomed")).to_have_text("Terminated")
    expect(
        card(page, "doomed").get_by_role("button", name="Refresh now")
    ).to_be_disabled()
    status = page.get_by_role("combobox", name="Status")
    status.select_option(label="Running")
    expect(card(page, "doomed")).to_have_count(0)
    expect(card(page, "keeper")).to_be_visible()
    status.select_option(label="Terminated")
    expect(card(page, "doomed")).to_be_visible()
    expect(card(page, "keeper")).to_have_count(0)


def test_admin_launches_a_worker(app, fleet, page, redis_client):
    sign_in(page, ADMIN)
    wait_live(page)
    expect(page.get_by_text("No workers yet. Launch one")).to_be_visible()

    page.get_by_role("button", name="Launch worker").click()
    dialog = page.get_by_role("dialog", name="Launch worker")
    dialog.get_by_role("textbox", name="Name").fill("fresh")
    dialog.get_by_role("combobox", name="Region").fill("us-east-1")
    with page.expect_response(answer_to("POST", "/api/workers")) as answer:
        dialog.get_by_role("button", name="Launch").click()
    assert answer.value.status == 202
    expect(dialog).to_have_count(0)

    fresh = card(page, "fresh")
    expect(status_badge(fresh, "fresh")).to_have_text("Pending")
    expect(notifications(page)).to_contain_text("Worker fresh created.")
    with app.app_context():
        run_jobs(redis_client)
    details, _ = open_worker(page, "fresh")
    instance_id = fact(details.get_by_role("region", name="EC2"), "Instance ID")
    expect(instance_id).to_have_text(re.compile(r"^i-[0-9a-f]+$"))
    expect(status_badge(details, "fresh")).to_have_text("Pending")
    with app.app_context():
        refresh(fleet.ctx)

    expect(status_badge(details, "fresh")).to_have_text("Running")
    expect(status_badge(fresh, "fresh")).to_have_text("Running")
    expect(fact(details.get_by_role("region", name="CML"), "Version")).not_to_have_text(
        "—"
    )


def test_admin_imports_an_untagged_instance_by_id(app, fleet, page, redis_client):
    (instance_id,) = fleet.launch("legacy", tagged=False)
    sign_in(page, ADMIN)
    wait_live(page)

    page.get_by_role("button", name="Import instances").click()
    dialog = page.get_by_role("dialog", name="Import instances")
    dialog.get_by_role("combobox", name="Region").fill("us-east-1")
    dialog.get_by_role("textbox", name="Instance IDs (optional)").fill(instance_id)
    with page.expect_response(answer_to("POST", "/api/workers/import")) as answer:
        dialog.get_by_role("button", name="Import").click()
    assert answer.value.status == 200

    report = dialog.get_by_role("status")
    expect(report).to_contain_text("Imported 1, skipped 0.")
    expect(report.get_by_role("list", name="Imported")).to_have_text("Imported legacy")
    expect(status_badge(card(page, "legacy"), "legacy")).to_have_text("Running")
    expect(notifications(page)).to_contain_text("Worker legacy imported.")
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_have_count(0)

    # The next refresh keeps the imported worker running and reads its CML.
    details, _ = open_worker(page, "legacy")
    version = fact(details.get_by_role("region", name="CML"), "Version")
    expect(version).to_have_text("—")
    with app.app_context():
        refresh(fleet.ctx)
    expect(version).not_to_have_text("—")
    expect(status_badge(details, "legacy")).to_have_text("Running")
    details.get_by_role("button", name="Close").click()
    expect(status_badge(card(page, "legacy"), "legacy")).to_have_text("Running")

    # Importing it again is reported, not duplicated.
    page.get_by_role("button", name="Import instances").click()
    dialog.get_by_role("combobox", name="Region").fill("us-east-1")
    dialog.get_by_role("textbox", name="Instance IDs (optional)").fill(instance_id)
    dialog.get_by_role("button", name="Import").click()
    expect(report).to_contain_text("Imported 0, skipped 1.")
    expect(report.get_by_role("list", name="Skipped")).to_have_text(
        f"Skipped {instance_id}: already a worker"
    )
    expect(
        page.get_by_role("list", name="Workers").get_by_role("article")
    ).to_have_count(1)


def test_admin_stops_starts_and_wipes_labs(app, fleet, page, redis_client):
    (instance_id,) = fleet.launch("labhost")
    running, idle, *rest = fleet.simulator.controller(instance_id).labs
    running.set_state("STARTED")
    idle.set_state("STOPPED")
    for lab in rest:
        lab.set_state("DEFINED_ON_CORE")
    with app.app_context():
        refresh(fleet.ctx)
    sign_in(page, ADMIN)
    wait_live(page)
    dialog, worker_id = open_worker(page, "labhost")
    row = lab_row(dialog, running.title)
    state = row.get_by_role("cell").first
    stop = row.get_by_role("button", name=f"Stop lab {running.title}")
    start = row.get_by_role("button", name=f"Start lab {running.title}")
    expect(state).to_have_text("Started")
    expect(start).to_be_disabled()
    lab_path = f"/api/workers/{worker_id}/labs/{running.id}"

    with page.expect_response(answer_to("POST", f"{lab_path}/stop")) as answer:
        stop.click()
    assert answer.value.status == 202
    expect(stop).to_have_attribute("aria-busy", "true")
    with app.app_context():
        run_jobs(redis_client)

    expect(state).to_have_text("Stopped")
    expect(notifications(page)).to_contain_text(
        f"Lab {running.title} stopped on labhost."
    )
    expect(stop).to_be_disabled()
    expect(start).to_be_enabled()

    with page.expect_response(answer_to("POST", f"{lab_path}/start")) as answer:
        start.click()
    assert answer.value.status == 202
    expect(start).to_have_attribute("aria-busy", "true")
    with app.app_context():
        run_jobs(redis_client)

    expect(state).to_have_text("Started")
    expect(notifications(page)).to_contain_text(
        f"Lab {running.title} started on labhost."
    )
    expect(row.get_by_role("button", name=f"Wipe lab {running.title}")).to_be_disabled()

    # Only a stopped lab can be wiped, and only after confirming.
    row = lab_row(dialog, idle.title)
    expect(row.get_by_role("cell").first).to_have_text("Stopped")
    row.get_by_role("button", name=f"Wipe lab {idle.title}").click()
    confirm = page.get_by_role("alertdialog", name=f"Wipe lab {idle.title}?")
    with page.expect_response(
        answer_to("POST", f"/api/workers/{worker_id}/labs/{idle.id}/wipe")
    ) as answer:
        confirm.get_by_role("button", name=f"Wipe lab {idle.title}").click()
    assert answer.value.status == 202
    expect(confirm).to_have_count(0)
    with app.app_context():
        run_jobs(redis_client)

    expect(row.get_by_role("cell").first).to_have_text("Defined")
    expect(notifications(page)).to_contain_text(f"Lab {idle.title} wiped on labhost.")
    expect(row.get_by_role("button", name=f"Start lab {idle.title}")).to_be_enabled()


# Without an event seen before the drop, the page can only resume from the
# position the fleet snapshot gave it, which is "" while the replay stream is
# empty: that case once lost the event.
@pytest.mark.parametrize(
    "seen_before", [False, True], ids=["first-event", "after-an-event"]
)
def test_dropped_stream_reconnects_without_losing_an_event(
    app, page, server, redis_client, seen_before
):
    with app.app_context():
        alpha = seed_worker("alpha", cloudwatch_cpu_utilization=12.0)
    sign_in(page, USER)
    wait_live(page)
    cpu = card(page, "alpha").get_by_role("meter", name="CPU")
    if seen_before:
        with app.app_context():
            change_worker(
                redis_client,
                alpha,
                "worker.cloudwatch_metrics.updated",
                cloudwatch_cpu_utilization=30.0,
            )
        expect(cpu).to_have_attribute("aria-valuenow", "30")
    mark_page(page)
    reconnecting = page.get_by_role("status").filter(has_text="Reconnecting…")
    expect(reconnecting).to_have_count(0)

    server.stop()
    expect(reconnecting).to_be_visible()
    expect(live(page)).to_have_count(0)
    with app.app_context():
        change_worker(
            redis_client,
            alpha,
            "worker.cloudwatch_metrics.updated",
            cloudwatch_cpu_utilization=64.0,
        )
    server.start()

    wait_live(page)
    expect(reconnecting).to_have_count(0)
    expect(cpu).to_have_attribute("aria-valuenow", "64")
    assert_not_reloaded(page)


def test_screenshots_of_the_dashboard_and_the_worker_modal(app, fleet, page):
    # (name, CloudWatch CPU, CloudWatch memory or None without the agent, labs
    # to start): a fleet in ordinary use, busy and idle, one worker stopped.
    for name, cpu, memory, started in (
        ("ccna-lab-1", 34.0, 52.0, 1),
        ("ccnp-enterprise", 78.0, 81.0, 2),
        ("devnet-sandbox", 12.0, None, 0),
        ("sec-training", 93.0, 67.0, 1),
        ("spare-east", 3.0, 18.0, 0),
    ):
        (instance_id,) = fleet.launch(name)
        fleet.seed_metrics(instance_id, cpu, memory)
        for lab in fleet.simulator.controller(instance_id).labs[:started]:
            lab.set_state("STARTED")
    (stopped,) = fleet.launch("archive-lab")
    fleet.ec2.stop_instances(InstanceIds=[stopped])
    with app.app_context():
        outcome = refresh(fleet.ctx)
    assert not outcome.failures, outcome.summary()

    sign_in(page, ADMIN)
    wait_live(page)
    workers = page.get_by_role("list", name="Workers")
    expect(workers.get_by_role("article")).to_have_count(6)
    expect(
        card(page, "ccnp-enterprise").get_by_role("meter", name="CPU")
    ).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard.png")

    card(page, "ccnp-enterprise").get_by_role("link", name="ccnp-enterprise").click()
    dialog = page.get_by_role("dialog", name="ccnp-enterprise")
    expect(dialog.get_by_role("button", name="Stop lab").first).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "worker-modal.png")
