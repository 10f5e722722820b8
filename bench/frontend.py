"""Front-end budgets: bundle size, first render of 500 cards, event-to-DOM latency.

Three figures, each printed against its budget:

1. The production JavaScript, gzipped (every ``backend/static/assets/*.js``, at
   zlib's default level, the one most servers use): under 200 KB.
2. The first render of a 500-worker dashboard in Chromium: from navigation start
   to 500 cards in the DOM, measured in the page (``performance.now()`` in a
   MutationObserver). Each load is a fresh browser context, so nothing is
   cached; the median of RENDER_RUNS loads is held against 1 s. Beside it: when
   the fleet's answer had arrived and when the first card appeared, which
   separate the server's share from the page's.
3. How fast an event reaches the DOM: EVENTS worker events are published on the
   server, one every EVENT_GAP_MS, each changing a different card. The page
   notes when each event reaches the EventSource and when its card's DOM
   changes; the p95 of that gap is held against 50 ms, and so is the p95 from
   publish to DOM (both ends read this machine's clock), which adds the time
   an event waits for the page's main thread to be free.

The app is served as in the browser tests: werkzeug's threaded server in this
process, MongoDB stood in by mongomock (seeded with 500 workers), a real Redis
at 127.0.0.1:6379, database 14, emptied before and after.

Run: `.venv/bin/python bench/frontend.py` (about 30 s; rebuild the SPA
first with `cd frontend && npm run build`). Talks only to 127.0.0.1.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser_fixtures import VIEWPORT, LiveServer, launch_chromium  # noqa: E402
from playwright.sync_api import Browser, sync_playwright  # noqa: E402

from backend import auth  # noqa: E402
from backend.app import close_app, create_app  # noqa: E402
from backend.bootstrap import initialise  # noqa: E402
from backend.events import publish  # noqa: E402
from backend.models import Worker  # noqa: E402
from backend.settings import load_settings  # noqa: E402

ASSETS = ROOT / "backend" / "static" / "assets"
REDIS_URL = "redis://127.0.0.1:6379/14"
ADMIN = ("bench", "bench-password-1")
WORKERS = 500
RENDER_RUNS = 5
EVENTS = 200
EVENT_GAP_MS = 25

BUDGET_JS_KB = 200.0
BUDGET_RENDER_MS = 1000.0
BUDGET_EVENT_MS = 50.0

# Installed before the app's own code: notes when the cards of the fleet list
# reach WORKERS, and, once the bench arms it, when each event reaches the
# EventSource and when the card it is about next changes.
PAGE_PROBE = """
(() => {
  const probe = (window.__bench = {
    firstCardAt: null, cardsAt: null, arrived: {}, changed: {},
  })
  const pending = new Map()

  new MutationObserver((records, observer) => {
    const cards = document.querySelectorAll('ul[aria-label="Workers"] article')
    if (cards.length > 0) probe.firstCardAt ??= performance.now()
    if (cards.length < COUNT) return
    observer.disconnect()
    probe.cardsAt = performance.now()
    const fleet = performance
      .getEntriesByType('resource')
      .find((entry) => new URL(entry.name).pathname === '/api/workers')
    probe.fleetAt = fleet ? fleet.responseEnd : null
    // A frame callback runs before that frame's style, layout and paint; a task
    // queued from it runs once they are done, so the cards have been drawn.
    requestAnimationFrame(() => setTimeout(() => (probe.paintedAt = performance.now())))
  }).observe(document, { childList: true, subtree: true })

  const listen = EventSource.prototype.addEventListener
  EventSource.prototype.addEventListener = function (type, listener, options) {
    const timed = (message) => {
      if (probe.armed) {
        const event = JSON.parse(message.data)
        const at = { perf: performance.now(), wall: Date.now() }
        probe.arrived[event.id] = at
        pending.set(event.worker_id, { id: event.id, at })
      }
      return listener.call(this, message)
    }
    return listen.call(this, type, timed, options)
  }

  probe.watch = () => {
    const list = document.querySelector('ul[aria-label="Workers"]')
    new MutationObserver((records) => {
      const perf = performance.now()
      const wall = Date.now()
      for (const record of records) {
        const target = record.target
        const node = target.nodeType === 1 ? target : target.parentElement
        const card = node && node.closest('article[data-worker-id]')
        const waiting = card && pending.get(card.dataset.workerId)
        if (!waiting) continue
        pending.delete(card.dataset.workerId)
        probe.changed[waiting.id] = { perf, wall }
      }
    }).observe(list, {
      childList: true, subtree: true, characterData: true, attributes: true,
    })
    probe.armed = true
  }
})()
""".replace("COUNT", str(WORKERS))


def js_sizes() -> list[tuple[str, int, int]]:
    """(file, raw bytes, gzipped bytes) of every production script."""
    sizes = []
    for path in sorted(ASSETS.glob("*.js")):
        data = path.read_bytes()
        sizes.append((path.name, len(data), len(gzip.compress(data, compresslevel=6))))
    return sizes


def seed_fleet(count: int) -> list[Worker]:
    """``count`` workers with every source filled in, as after a refresh."""
    rng = random.Random(500)
    now = datetime.now(UTC)
    workers = []
    for index in range(count):
        running = rng.random() > 0.15
        nodes_total = rng.randint(0, 60)
        workers.append(
            Worker(
                name=f"cml-{index:03d}",
                region=rng.choice(["us-east-1", "eu-west-1"]),
                aws_instance_id=f"i-{index:017x}",
                instance_type="c5.2xlarge",
                status="running" if running else "stopped",
                public_ip=f"198.51.{index // 250}.{index % 250 + 1}"
                if running
                else None,
                ec2_state="running" if running else "stopped",
                ec2_instance_status="ok",
                ec2_system_status="ok",
                ec2_detailed_monitoring="disabled",
                ec2_checked_at=now,
                cloudwatch_cpu_utilization=rng.uniform(1, 95) if running else None,
                cloudwatch_memory_utilization=rng.uniform(10, 90) if running else None,
                cloudwatch_period_seconds=300,
                cloudwatch_collected_at=now - timedelta(minutes=5),
                cml_service_status="available" if running else "unavailable",
                cml_version="2.9.0",
                cml_labs_count=rng.randint(0, 8),
                cml_nodes_total=nodes_total,
                cml_nodes_running=rng.randint(0, nodes_total),
                cml_license_registration="COMPLETED",
                cml_license_authorization="IN_COMPLIANCE",
                cml_synced_at=now,
            )
        )
    return Worker.objects.insert(workers)


def first_render(browser: Browser, base: str, state: Any) -> dict[str, float]:
    """Milliseconds from navigation start to the fleet's arrival, to the first card
    and to WORKERS cards in the DOM, and to those cards drawn, in a cold context."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base, storage_state=state)
    try:
        page = context.new_page()
        page.add_init_script(PAGE_PROBE)
        page.goto("/")
        page.wait_for_function("window.__bench.paintedAt", timeout=30_000)
        return {
            "fleet": page.evaluate("window.__bench.fleetAt"),
            "first": page.evaluate("window.__bench.firstCardAt"),
            "cards": page.evaluate("window.__bench.cardsAt"),
            "painted": page.evaluate("window.__bench.paintedAt"),
        }
    finally:
        context.close()


def event_latencies(
    browser: Browser, base: str, state: Any, redis: Any, workers: list[Worker]
) -> dict[str, list[float]]:
    """Publish EVENTS events and time each one at the EventSource and in the DOM."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base, storage_state=state)
    try:
        page = context.new_page()
        page.add_init_script(PAGE_PROBE)
        page.goto("/")
        page.get_by_role("status").filter(has_text="Live").wait_for()
        page.wait_for_function("window.__bench.cardsAt !== null")
        page.evaluate("window.__bench.watch()")

        published: dict[str, float] = {}
        for index, worker in enumerate(workers[:EVENTS]):
            before = worker.to_dict()
            worker.cloudwatch_cpu_utilization = float(index % 100)
            worker.cml_nodes_running = (worker.cml_nodes_running or 0) + 1
            after = worker.to_dict()
            changes = {
                name: [before[name], after[name]]
                for name in ("cloudwatch_cpu_utilization", "cml_nodes_running")
            }
            sent = time.time() * 1000
            event_id = publish(
                redis,
                "worker.cml_metrics.updated",
                worker_id=after["id"],
                data={"worker": after, "changes": changes},
            )
            published[event_id] = sent
            # A steady pace, so each figure is one event's own path rather than
            # the tail of a burst queued behind it.
            time.sleep(EVENT_GAP_MS / 1000)

        page.wait_for_function(
            f"Object.keys(window.__bench.changed).length >= {EVENTS}",
            timeout=30_000,
        )
        arrived = page.evaluate("window.__bench.arrived")
        changed = page.evaluate("window.__bench.changed")
    finally:
        context.close()

    return {
        "publish → EventSource": [arrived[i]["wall"] - published[i] for i in published],
        "EventSource → DOM": [
            changed[i]["perf"] - arrived[i]["perf"] for i in published
        ],
        "publish → DOM": [changed[i]["wall"] - published[i] for i in published],
    }


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def verdict(figure: float, budget: float) -> str:
    return "PASS" if figure < budget else "MISS"


def main() -> None:
    # One line per request from werkzeug would bury the tables.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not (ASSETS.parent / "index.html").is_file():
        sys.exit("the SPA is not built: run `cd frontend && npm run build` first")

    sizes = js_sizes()
    settings = load_settings(
        {
            "SECRET_KEY": "bench-secret-key-123",
            "REDIS_URL": REDIS_URL,
            "MONGODB_URL": "mongomock://localhost/bench_frontend",
        },
        environment="test",
    )
    app = create_app(settings)
    redis = app.extensions["cmlfleet.redis"]
    redis.flushdb()
    with app.app_context():
        list(initialise(settings))
        auth.create_user(*ADMIN, "admin")
        workers = seed_fleet(WORKERS)

    server = LiveServer(app).start()
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            context = browser.new_context(base_url=server.base)
            answer = context.request.post(
                "/api/auth/login",
                data={"username": ADMIN[0], "password": ADMIN[1]},
            )
            assert answer.ok, answer.text()
            state = context.storage_state()
            context.close()

            renders = [
                first_render(browser, server.base, state) for _ in range(RENDER_RUNS)
            ]
            latencies = event_latencies(browser, server.base, state, redis, workers)
            browser.close()
    finally:
        server.stop()
        app.extensions["cmlfleet.hub"].stop()
        redis.flushdb()
        close_app(app)

    print(f"\nProduction JavaScript ({ASSETS.relative_to(ROOT)})")
    print(f"{'file':<34} {'raw KB':>9} {'gzip KB':>9}")
    for name, raw, packed in sizes:
        print(f"{name:<34} {raw / 1024:>9.1f} {packed / 1024:>9.1f}")
    total_js = sum(packed for _, _, packed in sizes) / 1024
    print(f"{'total':<34} {sum(r for _, r, _ in sizes) / 1024:>9.1f} {total_js:>9.1f}")

    print(f"\nFirst render of {WORKERS} cards, {RENDER_RUNS} cold loads (ms after")
    print("navigation start; the budget is on all cards in the DOM)")
    columns = [
        ("fleet", "fleet answered"),
        ("first", "first card"),
        ("cards", "cards in DOM"),
        ("painted", "cards drawn"),
    ]
    print(f"{'load':<8}" + "".join(f" {title:>15}" for _, title in columns))
    for number, run in enumerate(renders, 1):
        print(f"{number:<8}" + "".join(f" {run[key]:>15.0f}" for key, _ in columns))
    median = {key: statistics.median(r[key] for r in renders) for key, _ in columns}
    print(f"{'median':<8}" + "".join(f" {median[key]:>15.0f}" for key, _ in columns))
    spread = [
        f"{min(r[key] for r in renders):.0f}–{max(r[key] for r in renders):.0f}"
        for key, _ in columns
    ]
    print(f"{'min–max':<8}" + "".join(f" {text:>15}" for text in spread))
    render = median["cards"]

    print(
        f"\nEvent to DOM, {EVENTS} events one every {EVENT_GAP_MS} ms over "
        f"{WORKERS} cards (ms)"
    )
    print(f"{'path':<24} {'p50':>7} {'p95':>7} {'max':>7}")
    for path, values in latencies.items():
        print(
            f"{path:<24} {statistics.median(values):>7.1f} {p95(values):>7.1f} "
            f"{max(values):>7.1f}"
        )
    from_source = p95(latencies["EventSource → DOM"])
    from_publish = p95(latencies["publish → DOM"])
    rows = [
        ("JS, gzip total", total_js, "KB", BUDGET_JS_KB),
        (f"first render, {WORKERS} cards (median)", render, "ms", BUDGET_RENDER_MS),
        ("event p95, EventSource → DOM", from_source, "ms", BUDGET_EVENT_MS),
        ("event p95, publish → DOM", from_publish, "ms", BUDGET_EVENT_MS),
    ]
    print(f"\nBudgets ({os.cpu_count()} cores, headless Chromium)")
    header = f"{'figure':<34} {'measured':>10} {'budget':>10}  result"
    print(header)
    print("-" * len(header))
    for figure, value, unit, budget in rows:
        print(
            f"{figure:<34} {value:>7.1f} {unit} {f'< {budget:.0f} {unit}':>10}  "
            f"{verdict(value, budget)}"
        )


if __name__ == "__main__":
    main()
