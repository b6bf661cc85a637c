"""The approval console in a real browser: Debian's chromium driven by Playwright for Python.

Approves one held event and rejects another through the page, then checks where each went.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.admin import apply_topics
from pipeline.harness import read_topic
from pipeline.heldcli import call
from pipeline.topics import RegionTopics, topic_specs
from tests.conftest import wait_for
from tests.integration.test_approval import _outcomes, _port, _produce, payment

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def off_loop(fn, *args):  # noqa: ANN001, ANN201
    """Playwright's sync API runs an event loop in this thread: run asyncio helpers in another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' installs playwright")
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_when_an_approver_uses_the_console_then_one_event_is_released_and_one_rejected(
        kafka_bootstrap, policy_factory, worker_factory, local_idp, browser_page):
    region = f"console{secrets.token_hex(3)}"  # fresh topics per run, also on a reused broker
    loaded = policy_factory(region=region)
    names = RegionTopics(region)
    assert off_loop(asyncio.run, apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    worker = worker_factory(loaded)
    url = f"http://127.0.0.1:{_port(worker)}"
    wait_for(lambda: call("GET", f"{url}/health/ready")[0] == 200, 90, "the worker to become ready")
    off_loop(asyncio.run, _produce(kafka_bootstrap, [(names.raw("payments"), f"web-{i}", payment(i)) for i in range(2)]))
    wait_for(lambda: len(call("GET", f"{url}/held/")[1].get("held", [])) == 2, 60, "two holds in the inbox")

    page = browser_page
    page.goto(f"{url}/console/")
    page.fill("#token", local_idp.mint("alice", ["payments-approvers"]))
    page.dispatch_event("#token", "change")
    page.click("#refresh")
    page.wait_for_selector('tr[data-event-id="web-1"]')
    assert "4111111111111111" not in page.content() and "************1111" in page.content()

    approve_row = page.locator('tr[data-event-id="web-0"]')
    approve_row.locator(".justification").fill("customer confirmed by phone")
    approve_row.locator(".approve").click()
    page.wait_for_selector('tr[data-event-id="web-0"][data-decided="released"]', timeout=30_000)
    reject_row = page.locator('tr[data-event-id="web-1"]')
    reject_row.locator(".justification").fill("card reported stolen")
    reject_row.locator(".reject").click()
    page.wait_for_selector('tr[data-event-id="web-1"][data-decided="rejected"]', timeout=30_000)
    assert f"{region}.cleared.payments" in approve_row.locator(".result").inner_text()

    page.click("#refresh")
    wait_for(lambda: page.locator("tbody tr").count() == 0, 10, "the inbox to be empty")
    wait_for(lambda: call("GET", f"{url}/provenance/web-0/")[1].get("outcome") == "released", 30,
             "the release in provenance")
    page.goto(f"{url}/provenance/web-0/")
    assert '"outcome":"released"' in page.content().replace(" ", "")

    outcomes = off_loop(_outcomes, kafka_bootstrap, names)
    assert outcomes == {"web-0": ["cleared"], "web-1": ["rejected"]}
    cleared = off_loop(asyncio.run, read_topic(kafka_bootstrap, names.cleared("payments")))
    assert b"4111111111111111" not in cleared[0].value
