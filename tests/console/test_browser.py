"""The Herald Console as a person uses it: Debian's Chromium, headless, driven by Playwright, against devhost
as a process. Each test reads what is on the screen (roles, labels, text), as a person would, and fails on
any Content-Security-Policy violation or console error the pages cause.

With HERALD_CONSOLE_SCREENSHOTS=<folder> the tests also write screenshots of the main pages there
(``make console-screenshots`` writes docs/console/).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FloatRect,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.support.devhost_process import DevhostProcess, devhost_process, devhost_token, open_resource
from tests.support.identities import random_org
from tests.support.receiver import Behaviour, Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = Path("/usr/bin/chromium")
# Chromium as CI runs it: no sandbox (root in a container), nothing fetched in the background, a fresh
# profile (Playwright's launch makes a temporary user-data-dir of its own for every browser).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
# Every failed push is retried after 1 s and dead-lettered once 7 s have passed since its first attempt;
# an endpoint's circuit opens for 1 s. A delivery thus fails, dead-letters and is replayed within seconds.
SETTINGS = {
    "HERALD_RETRY_SCHEDULE_SECONDS": "1",
    "HERALD_RETRY_HORIZON_HOURS": "0.002",
    "HERALD_CIRCUIT_OPEN_SECONDS": "1",
}
SCREENSHOTS = os.environ.get("HERALD_CONSOLE_SCREENSHOTS")  # a folder, relative to the working directory
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def devhost(azurite, settings, tmp_path_factory) -> Iterator[DevhostProcess]:
    with devhost_process(azurite, settings, tmp_path_factory.mktemp("devhost-console"), SETTINGS) as process:
        yield process


@pytest.fixture(scope="module")
def chromium() -> Path:
    assert CHROMIUM.exists(), f"the browser tests need Debian's chromium at {CHROMIUM} (make test installs it)"
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


class Visit:
    """A browser tab of a person, with every CSP violation, console error and page error it saw."""

    def __init__(self, context: BrowserContext, page: Page, base: str) -> None:
        self.context, self.page, self.base = context, page, base
        self.problems: list[str] = []
        self.expected: list[re.Pattern[str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        text = f"{message.text} ({message.location.get('url', '')})"
        if message.type == "error" and not any(p.search(text) for p in self.expected):
            self.problems.append(f"console error on {self.page.url}: {text}")

    def expect_failed_request(self, status: int) -> None:
        """The browser logs a failed request as a console error; one the test causes on purpose is expected."""
        self.expected.append(re.compile(rf"status of {status}\b"))

    async def open(self, route: str) -> Page:
        await self.page.goto(f"{self.base}/console/#/{route}")
        return self.page

    async def shoot(self, name: str, start: Locator | None = None, height: int = 800) -> None:
        """A screenshot for docs/console/ of the page, or of ``height`` pixels from ``start`` (a locator) down."""
        if not SCREENSHOTS:
            return
        path = str(Path(SCREENSHOTS, f"{name}.png"))
        if start is None:
            await self.page.screenshot(path=path, animations="disabled")
            return
        box = await start.bounding_box()
        assert box is not None
        top = box["y"] + await self.page.evaluate("window.scrollY") - 16
        clip = FloatRect(x=0, y=top, width=DESKTOP["width"], height=height)
        await self.page.screenshot(path=path, animations="disabled", full_page=True, clip=clip)

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


# Any violation of the Content-Security-Policy becomes a console error, which the tests fail on.
REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) =>
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"} in ${event.sourceFile}:${event.lineNumber}`));
"""


@pytest_asyncio.fixture(loop_scope="module")
async def visit(browser: Browser, devhost: DevhostProcess) -> AsyncIterator[Visit]:
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/Oslo")
    context.set_default_timeout(WAIT_MS)
    await context.add_init_script(REPORT_CSP)
    page = await context.new_page()
    tab = Visit(context, page, devhost.url)
    yield tab
    await context.close()
    tab.assert_clean()


async def sign_in(visit: Visit, who: str = "org", value: str = "", *, screenshot: bool = False) -> None:
    """Through devhost's issuer: the console's Sign in, the person chooses who they are, and is back."""
    page = visit.page
    await page.goto(f"{visit.base}/console/")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Sign in to Herald (local)")).to_be_visible()
    if screenshot:
        await visit.shoot("signin")
    if who == "org":
        await page.get_by_label("Organisation number").fill(value)
        await page.get_by_role("button", name="Sign in as this organisation").click()
    elif who == "admin":
        await page.get_by_role("button", name="Sign in as administrator").click()
    else:
        raise AssertionError(who)
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shown = "system:herald-admin" if who == "admin" else f"org:{value}"
    await expect(page.get_by_text(shown, exact=True)).to_be_visible()


async def publish(devhost: DevhostProcess, token: str, resource: str, event_type: str) -> str:
    event_id = f"console-{uuid.uuid4().hex[:12]}"
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:console:test",
        "type": event_type,
        "resource": resource,
        "time": datetime.now(UTC).isoformat(),
        "data": {"case": event_id},
    }
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{devhost.url}/api/v1/events",
            content=json.dumps(event),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/cloudevents+json"},
        )
    assert response.status_code == 202, response.text
    return event_id


async def refresh_until(page: Page, button: str, shown: Locator, seconds: float = 30) -> None:
    """Presses a page's Refresh button until ``shown`` (a locator) is visible, as a person watching would."""
    deadline = datetime.now(UTC).timestamp() + seconds
    while True:
        try:
            await expect(shown).to_be_visible(timeout=1500)
            return
        except AssertionError:
            if datetime.now(UTC).timestamp() > deadline:
                raise
        await page.get_by_role("button", name=button, exact=True).click()


async def test_a_person_subscribes_sees_deliveries_fail_dead_letter_and_replays(visit, devhost, receiver):
    organisation = random_org().removeprefix("org:")
    resource = f"urn:console:herald:{uuid.uuid4().hex[:8]}"
    open_resource(devhost.port, devhost.env, resource)
    publisher = devhost_token(devhost.env, f"org:{organisation}", "events.publish")
    page = visit.page
    await sign_in(visit, "org", organisation, screenshot=True)

    # A subscription to a local receiver, created through the form, becomes active.
    await page.get_by_role("link", name="Subscriptions").click()
    await expect(page.get_by_role("heading", name="Subscriptions", level=1)).to_be_visible()
    await page.get_by_role("button", name="New subscription").click()
    form = page.get_by_role("form", name="New subscription")
    await form.get_by_label("Endpoint URL").fill(receiver.url("hook"))
    await form.get_by_label("Resource").fill(resource)
    await form.get_by_label("Type filter").fill("no.example.case.*")
    await form.get_by_role("button", name="Create subscription").click()
    await expect(page.get_by_role("heading", name="Subscription created")).to_be_visible()
    await expect(page.get_by_text("store it now, it is not shown again")).to_be_visible()
    await expect(page.get_by_text("The subscription is active")).to_be_visible()
    await page.get_by_role("button", name="Done").click()
    row = page.get_by_role("row").filter(has_text=receiver.url("hook"))
    await expect(row.get_by_text("active", exact=True)).to_be_visible()
    await visit.shoot("subscriptions")

    # An event published through the API is pushed, and its delivery shows in the log.
    delivered = await publish(devhost, publisher, resource, "no.example.case.opened")
    await row.get_by_role("link", name=receiver.url("hook")).click()
    await expect(page.get_by_role("heading", name=f"Webhook: {receiver.url('hook')}", level=1)).to_be_visible()
    await page.get_by_role("link", name="Deliveries").click()
    log = page.get_by_role("region", name="Delivery attempts, newest first")
    await refresh_until(page, "Refresh", log.get_by_role("row").filter(has_text=delivered))
    first = log.get_by_role("row").filter(has_text=delivered)
    await expect(first.get_by_text("delivered", exact=True)).to_be_visible()
    await expect(first.get_by_role("cell", name="200", exact=True)).to_be_visible()
    assert [p for p in receiver.posts("hook") if delivered.encode() in p.body]

    # The receiver breaks: the next event's attempts fail with 500, in the log and in the health figures.
    receiver.behaviours["/hook"] = Behaviour(status=500)
    failing = await publish(devhost, publisher, resource, "no.example.case.closed")
    failed = log.get_by_role("row").filter(has_text=failing).filter(has_text="500")
    await refresh_until(page, "Refresh", failed.first)
    await expect(failed.first.get_by_text("retry", exact=True)).to_be_visible()
    await page.get_by_role("link", name="Health").click()
    await expect(page.get_by_role("heading", name="Delivery health")).to_be_visible()
    figures = page.get_by_role("region", name="Deliveries per period")
    last_hour = figures.get_by_role("row").filter(has_text="Last hour")
    # Cells: the period, delivered, failed, success rate. The figures are counted within seconds.
    await refresh_until(page, "Refresh", last_hour.get_by_role("cell").nth(2).filter(has_text=re.compile(r"^[1-9]")))
    await expect(last_hour.get_by_role("cell").nth(1)).to_have_text("1")
    await expect(last_hour.get_by_role("cell").nth(3)).to_have_text(re.compile(r"^\d\d?(\.\d)? %$"))  # below 100 %
    await expect(page.get_by_text("Every delivery has failed since")).to_be_visible()
    await expect(page.get_by_text("the endpoint answered 500")).to_be_visible()  # the last failure
    # The charts say in words what they draw: the latest success rate is below 100 %.
    rate = re.compile(r"^Success rate, by hour, the last 24 hours: .*latest \d\d?(\.\d)? %$")
    await expect(page.get_by_role("img", name=rate)).to_be_visible()
    await expect(
        page.get_by_role("img", name=re.compile(r"^Latency p50 and p95, by hour.*latest \d+ ms$"))
    ).to_be_visible()
    await visit.shoot("health", start=page.get_by_role("heading", name="Delivery health"), height=1000)

    # The schedule runs out: the delivery is dead-lettered.
    await page.get_by_role("link", name="Dead letters").click()
    dead = page.get_by_role("region", name="Dead letters").get_by_role("row").filter(has_text=failing)
    await refresh_until(page, "Refresh", dead)
    # Its last status is the endpoint's 500, unless the endpoint's circuit was open when the retry
    # horizon ended: then Herald says it did not try again. Either way the row says why.
    await expect(dead).to_contain_text(
        re.compile(r"\b500\b|could not take it before the retry horizon ended"), use_inner_text=True
    )
    await visit.shoot("dead-letters")

    # The receiver is fixed and the dead letter replayed: it is delivered.
    receiver.behaviours["/hook"] = Behaviour(status=200)
    await page.get_by_role("button", name="Replay all").click()
    await expect(page.get_by_text("1 dead letter queued again with a fresh retry schedule.")).to_be_visible()
    await expect(
        page.get_by_text("No dead letters: every delivery was delivered or is still being retried.")
    ).to_be_visible()
    await page.get_by_role("link", name="Deliveries").click()
    replayed = log.get_by_role("row").filter(has_text=failing).filter(has_text="delivered")
    await refresh_until(page, "Refresh", replayed)
    # The attempt that ended the schedule: "dead" after a failed last try, or "expired" when the next try
    # would have come after the retry horizon.
    ended = log.get_by_role("row").filter(has_text=failing).filter(has_text=re.compile(r"dead|expired"))
    await expect(ended.first).to_be_visible()
    await visit.shoot("deliveries")
    pushes = [p for p in receiver.posts("hook") if failing.encode() in p.body]
    assert len(pushes) >= 2 and len({p.headers["webhook-id"] for p in pushes}) == 1  # a replay keeps its id
    await page.get_by_role("link", name="Backfill").click()
    await expect(page.get_by_role("button", name="Start backfill")).to_be_visible()

    # An email ordered through the form is followed to Delivered (devhost's local sink reports it).
    await page.get_by_role("link", name="Notifications").click()
    await expect(page.get_by_role("heading", name="Notifications", level=1)).to_be_visible()
    await page.get_by_role("button", name="New order").click()
    order = page.get_by_role("form", name="New order")
    await order.get_by_label("Email addresses").fill("kari.nordmann@example.com")
    await order.get_by_label("Subject").fill("Your case is closed")
    await order.get_by_label("Body").fill("Hello $recipientName$, your case is closed.")
    await order.get_by_label("Sender's reference").fill("case-4711")
    await order.get_by_role("button", name="Send order").click()
    await expect(page.get_by_role("heading", name="Order case-4711", level=1)).to_be_visible()
    recipient = page.get_by_role("region", name="Notifications of this order").get_by_role("row")
    recipient = recipient.filter(has_text="kari.nordmann@example.com")
    await expect(recipient.get_by_text("Delivered", exact=True).first).to_be_visible()
    await expect(page.get_by_text("final: nothing changes any more")).to_be_visible()
    await visit.shoot("order")
    await page.get_by_role("link", name="All orders").click()
    await expect(page.get_by_role("link", name="Order case-4711")).to_be_visible()
    # Under devhost nothing leaves the machine: the local outbox shows what would have been sent.
    await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Outbox").click()
    await expect(page.get_by_role("heading", name="Outbox", level=1)).to_be_visible()
    await expect(page.get_by_text("Your case is closed").first).to_be_visible()
    await visit.shoot("outbox")


async def test_an_administrator_gives_a_resource_a_policy_and_reads_its_events(visit, devhost):
    """The administrator's pages, then every section a signed-in administrator has: each loads with no
    CSP violation or console error (the fixture checks that when the test ends)."""
    resource = f"urn:console:herald:{uuid.uuid4().hex[:8]}"
    page = visit.page
    await sign_in(visit, "admin")

    await page.get_by_role("link", name="Administration").click()
    await expect(page.get_by_role("heading", name="Resource policies")).to_be_visible()
    await page.get_by_role("button", name="New policy").click()
    await page.get_by_label("Resource URN").fill(resource)
    await page.get_by_label("Publishers").fill("*")
    await page.get_by_label("Owners").fill("*")
    await page.get_by_role("button", name="Remove rule 1").click()
    await page.get_by_role("button", name="Save policy").click()
    await expect(page.get_by_text("Saved. It takes effect within about a second.")).to_be_visible()
    await expect(page.get_by_role("heading", name=f"Policy of {resource}")).to_be_visible()
    await page.get_by_role("link", name="All policies").click()
    await expect(page.get_by_role("link", name=resource)).to_be_visible()
    await visit.shoot("admin")
    tabs = page.get_by_role("navigation", name="Administration")
    for tab in ("Roles", "Delegations", "Senders"):
        await tabs.get_by_role("link", name=tab).click()
        await expect(page.get_by_role("heading", name=tab, level=2)).to_be_visible()

    # Anyone may publish now; the administrator reads the events on the Events page.
    token = devhost_token(devhost.env, random_org(), "events.publish")
    published = [await publish(devhost, token, resource, f"no.example.case.{step}") for step in ("opened", "closed")]
    await page.get_by_role("link", name="Events").click()
    await expect(page.get_by_role("heading", name="Events", level=1)).to_be_visible()
    await page.get_by_label("Resource").fill(resource)
    await page.get_by_role("button", name="Show events").click()
    events = page.get_by_role("region", name=f"Events of {resource}")
    for event_id in published:
        await expect(events.get_by_role("button", name=f"Open event {event_id}")).to_be_visible()
    await expect(page.get_by_text("2 events shown")).to_be_visible()
    await visit.shoot("events")
    await events.get_by_role("button", name=f"Open event {published[0]}").click()
    dialog = page.get_by_role("dialog", name="Event")
    await expect(dialog.get_by_text(f'"id": "{published[0]}"')).to_be_visible()
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()

    for section, heading in [
        ("Subscriptions", "Subscriptions"),
        ("Notifications", "Notifications"),
        ("Outbox", "Outbox"),
    ]:
        await page.get_by_role("navigation", name="Sections").get_by_role("link", name=section).click()
        await expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
        await expect(page.get_by_role("alert")).to_have_count(0)


async def test_an_api_error_is_shown_in_words(visit):
    visit.expect_failed_request(404)
    await sign_in(visit, "org", random_org().removeprefix("org:"))
    page = await visit.open("subscriptions/sub_00000000000000000000000000000000")
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("It may have been deleted, or it belongs to someone else.")
    await expect(alert.get_by_role("button", name="Try again")).to_be_visible()
    await expect(page.get_by_role("link", name="All subscriptions")).to_be_visible()


async def focused(page: Page, target: Locator, presses: int = 40) -> None:
    """Presses Tab until ``target`` (a locator) has the focus, as a keyboard user moves through a page."""
    for _ in range(presses):
        if await target.evaluate("element => element === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{target} never took the focus in {presses} presses of Tab")


async def test_sign_in_and_the_main_navigation_work_with_the_keyboard(visit):
    organisation = random_org().removeprefix("org:")
    page = visit.page
    await page.goto(f"{visit.base}/console/")
    await focused(page, page.get_by_role("button", name="Sign in"))
    await page.keyboard.press("Enter")
    number = page.get_by_label("Organisation number")
    await focused(page, number)
    await page.keyboard.press("Control+A")
    await page.keyboard.type(organisation)
    await focused(page, page.get_by_role("button", name="Sign in as this organisation"))
    await page.keyboard.press("Enter")

    navigation = page.get_by_role("navigation", name="Sections")
    await expect(navigation).to_be_visible()
    link = navigation.get_by_role("link", name="Notifications")
    await focused(page, link)
    await page.keyboard.press("Enter")
    heading = page.get_by_role("heading", name="Notifications", level=1)
    await expect(heading).to_be_focused()  # the page's heading takes the focus, so it is announced
    await expect(link).to_have_attribute("aria-current", "page")


async def test_on_a_phone_the_menu_opens_and_no_page_scrolls_sideways(browser, devhost):
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="en-GB")
    context.set_default_timeout(WAIT_MS)
    await context.add_init_script(REPORT_CSP)
    visit = Visit(context, await context.new_page(), devhost.url)
    try:
        page = visit.page
        await sign_in(visit, "admin")
        menu = page.get_by_role("button", name="Menu")
        await expect(menu).to_be_visible()
        await expect(menu).to_have_attribute("aria-expanded", "false")
        sections = page.get_by_role("navigation", name="Sections")
        for section in ("Events", "Subscriptions", "Notifications", "Administration"):
            await menu.click()
            await expect(menu).to_have_attribute("aria-expanded", "true")
            await sections.get_by_role("link", name=section).click()
            await expect(page.get_by_role("heading", name=section, level=1)).to_be_visible()
            await expect(sections.get_by_role("link", name=section)).to_be_hidden()  # the menu closed
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the {section} page scrolls sideways by {overflow} px on a phone"
        await menu.click()
        await visit.shoot("phone")
    finally:
        await context.close()
    visit.assert_clean()
