"""End to end with the real services, in real browsers: an editor creates an experiment on a
personalised block's variants inside a segment in the Wagtail admin (the real create form),
starts it; consented visitors in the segment (each a fresh Chromium session that accepts the
banner: the real POST /consent/) are split by the request path, and some click the banner (the
real beacon to the event intake); a real Celery worker process (not eager) drains the stream
into the experiment's statistics; the results screen shows the visitors and conversions per
arm the visitors made; promoting the winner from the admin changes what the next visitor sees,
and stops the experiment.

Headless Chromium (two: the editor's and the visitors') against the live server; real
PostgreSQL and Redis. Screenshots go to test-artifacts/.
"""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from wagtail.models import GroupPagePermission, ModelLogEntry, Page, PageLogEntry

import segments.definitions
from consent.models import ConsentRecord
from experiments import actions, runtime
from experiments.models import Assignment, Experiment, Statistic
from segments.models import LoggedEvent
from tests.builders import home_page, personalised_page, segment
from tests.conftest import IN_CI
from tests.support.browser import chromium
from tests.support.worker import start_worker, stop_worker, wait_for

try:
    from selenium.common.exceptions import (
        WebDriverException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.support.waits import click, gone
except ImportError:
    if IN_CI:
        raise
    pytest.skip("selenium is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SPRING = {"type": "context", "attribute": "utm_campaign", "op": "eq", "value": "spring"}
OFFERS = "/offers/?utm_campaign=spring"  # the campaign's visitors: in "spring" at once
VISITORS = 12  # at least; more only until each arm has the visitors the plan below needs
MAX_VISITORS = 30
TTL = 1.0  # seconds the running experiments stay in a process's memory (default 10)
BLOCK = (By.CSS_SELECTOR, "main [data-tailored-block]")
ACCEPT = (By.CSS_SELECTOR, "section.consent-banner button[name=action][value=accept_all]")


def wait(driver, timeout: float = 30):
    return WebDriverWait(driver, timeout)


def fill(driver, name: str, text: str):
    field = wait(driver).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, f"main form [name='{name}']"))
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    try:
        if field.get_attribute("value"):
            field.clear()
        field.send_keys(text)
    except WebDriverException as exc:
        raise AssertionError(f"cannot fill {name}: {field.get_attribute('outerHTML')}") from exc


def submit(driver):
    """Save the admin form and wait for the next page."""
    button = driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]")
    click(driver, button)
    wait(driver).until(gone(button))


@pytest.fixture
def offers():
    """A page whose personalised block has two variants for the campaign's visitors."""
    home_page()
    segment("spring", SPRING)
    segments.definitions.forget_definitions()
    page = personalised_page(
        default='Standard offer <a href="/">home</a>',
        variants=[
            ("spring", 'Spring offer A <a href="/">claim A</a>'),
            ("spring", 'Spring offer B <a href="/">claim B</a>'),
        ],
    )
    # Labelled, as editors do: the arms are named after them.
    body = page.body.get_prep_value()
    for variant, label in zip(body[0]["value"]["variants"], ("Offer A", "Offer B"), strict=True):
        variant["value"]["label"] = label
    page.body = body
    page.save_revision().publish()
    return page


@pytest.fixture
def editor(offers):
    """An editor (not a superuser) who may prepare, run and read experiments and publish the
    page."""
    user = get_user_model().objects.create_user("editor", password="editor-pass", is_staff=True)
    group = Group.objects.create(name="Experimenters")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="wagtailadmin", codename="access_admin"),
        *Permission.objects.filter(
            content_type__app_label="experiments",
            codename__in=[
                "add_experiment",
                "change_experiment",
                "view_experiment",
                "run_experiment",
                "view_experiment_results",
            ],
        ),
        Permission.objects.get(content_type__app_label="segments", codename="view_segment"),
    )
    home = Page.objects.get(pk=offers.get_parent().pk)
    for kind in ("add", "change", "publish"):
        GroupPagePermission.objects.create(group=group, page=home, permission_type=kind)
    user.groups.add(group)
    return user


@pytest.fixture
def worker(transactional_db, tmp_path, settings):
    """A real Celery worker process on this run's queue; tasks are published, not run inline.
    Both processes re-read the running experiments after TTL seconds."""
    from demo.celery import app

    settings.EXPERIMENTS_DEFINITIONS_CACHE_SECONDS = TTL
    # The request path's budget for the fast store (0.1 s, and 3 calls slower than 0.05 s in a
    # row open its breaker: default content, no event accepted) is for a production server, not
    # for a busy 2-core machine running two browsers, a worker and PostgreSQL: a breaker opened
    # by a slow moment would drop the visitors' page views and clicks.
    backend = settings.SEGMENTS_BACKEND
    settings.SEGMENTS_BACKEND = {
        **backend,
        "OPTIONS": {**backend.get("OPTIONS", {}), "REQUEST_TIMEOUT": 5.0},
    }
    settings.SEGMENTS_SLOW_CALL_SECONDS = 5.0
    log_path = tmp_path / "worker.log"
    proc = start_worker(
        connection.settings_dict["NAME"],
        name="experiments-e2e",
        log_path=log_path,
        extra_env={"TAILORED_EXPERIMENTS_TTL": str(TTL)},
    )
    proc.log_path = log_path
    app.conf.task_always_eager = False
    try:
        yield proc
    finally:
        app.conf.task_always_eager = True
        stop_worker(proc)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.fixture(autouse=True)
def _fresh_definitions():
    runtime.forget()
    yield
    runtime.forget()


# -- the editor ---------------------------------------------------------------------------------


def log_in(driver, base):
    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("editor")
    driver.find_element(By.NAME, "password").send_keys("editor-pass")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(EC.url_to_be(base + "/admin/"))


def choose_page(driver, title: str):
    """Wagtail's page chooser: open it, explore the home page's children, pick ``title``."""
    chooser = driver.find_element(By.ID, "id_page-chooser")
    click(driver, chooser.find_element(By.CSS_SELECTOR, "[data-chooser-action-choose]"))
    explore = wait(driver).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, ".modal a.navigate-pages"))
    )
    click(driver, explore)
    choice = wait(driver).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, f".modal a.choose-page[data-title='{title}']"))
    )
    click(driver, choice)
    wait(driver).until(lambda d: d.find_element(By.NAME, "page").get_attribute("value"))
    wait(driver).until(gone(choice))


def choose_segment(driver, name: str):
    """The segment chooser (a snippet chooser): open it, pick ``name``."""
    chooser = driver.find_element(By.ID, "id_segment-chooser")
    click(driver, chooser.find_element(By.CSS_SELECTOR, "[data-chooser-action-choose]"))
    choice = wait(driver).until(
        EC.element_to_be_clickable(
            (
                By.XPATH,
                "//*[contains(@class, 'modal')]//a[@data-chooser-modal-choice]"
                f"[normalize-space()='{name}']",
            )
        )
    )
    click(driver, choice)
    wait(driver).until(lambda d: d.find_element(By.NAME, "segment").get_attribute("value"))
    wait(driver).until(gone(choice))


def header_action(driver, name: str):
    """Open the header's "Actions" dropdown and follow its ``name`` action (start, promote...)."""
    toggle = wait(driver).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, "header button[aria-label='Actions']"))
    )
    click(driver, toggle)
    link = wait(driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, f"a[href$='/{name}/']")))
    click(driver, link)
    wait(driver).until(EC.url_contains(f"/{name}/"))


def create_experiment(driver, base, offers, screenshot) -> Experiment:
    driver.get(base + "/admin/experiments/")
    click(driver, wait(driver).until(EC.element_to_be_clickable((By.LINK_TEXT, "Add experiment"))))
    wait(driver).until(EC.presence_of_element_located((By.NAME, "name")))
    fill(driver, "name", "Spring banner")
    fill(driver, "key", "spring-banner")
    fill(driver, "description", "Offer B gets more clicks from the spring campaign than A.")
    Select(driver.find_element(By.NAME, "kind")).select_by_value("block")
    choose_page(driver, offers.title)
    choose_segment(driver, "Spring")
    fill(driver, "goals-0-name", "Clicks on the banner")
    fill(driver, "goals-0-event", "click")
    submit(driver)

    # Shown again: the block is still to be named, from what the chosen page offers.
    options = wait(driver).until(EC.presence_of_element_located((By.ID, "experiment-options")))
    assert "Choose the personalised block to test." in driver.page_source
    screenshot(driver, "create-options")
    block_id = options.find_element(By.CSS_SELECTOR, "h3 code").text
    fill(driver, "block_id", block_id)
    fill(driver, "goals-0-match", f'{{"block": "{block_id}"}}')
    # The arms are left empty: the default content against each variant for the segment.
    submit(driver)
    wait(driver).until(lambda d: Experiment.objects.filter(key="spring-banner").exists())
    exp = Experiment.objects.get(key="spring-banner")
    assert exp.block_id == block_id and exp.segment.slug == "spring"
    assert exp.status == Experiment.Status.DRAFT

    driver.get(f"{base}/admin/experiments/edit/{exp.pk}/")
    header_action(driver, "start")
    click(driver, driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    wait(driver).until(EC.url_contains(f"/edit/{exp.pk}/"))
    screenshot(driver, "started")
    exp.refresh_from_db()
    assert exp.status == Experiment.Status.RUNNING
    return exp


def results_table(driver) -> dict[tuple[str, str], tuple[int, str]]:
    """(segment, arm) -> (visitors, rate) as the results screen shows them."""
    table = driver.find_element(By.CSS_SELECTOR, "[data-testid=experiment-results] table")
    headers = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    col = {name: headers.index(name) for name in ("Segment", "Arm", "Visitors", "Rate / mean")}
    shown = {}
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [td.text.strip() for td in row.find_elements(By.CSS_SELECTOR, "td")]
        key = (cells[col["Segment"]], cells[col["Arm"]].removesuffix(" (control)"))
        shown[key] = (int(cells[col["Visitors"]]), cells[col["Rate / mean"]])
    return shown


# -- the visitors -------------------------------------------------------------------------------


def new_consented_visitor(browser, base) -> str:
    """A new visitor (no cookie) from the campaign who accepts the banner; their key."""
    browser.delete_all_cookies()
    browser.get(base + OFFERS)
    before = ConsentRecord.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    accept = wait(browser).until(EC.element_to_be_clickable(ACCEPT))
    click(browser, accept)
    wait(browser).until(gone(accept))
    record = wait_for(lambda: ConsentRecord.objects.filter(pk__gt=before).first(), timeout=30)
    assert record is not None, "the consent was not recorded"
    return record.visitor_key


def seen(browser, base) -> tuple[object, str]:
    """Open the offers page (consented): its block and the variant it shows."""
    browser.get(base + OFFERS)
    block = wait(browser).until(EC.presence_of_element_located(BLOCK))
    assert not browser.find_elements(*ACCEPT)  # consented: no banner
    return block, block.get_attribute("data-tailored-variant")


def drained(predicate, late: list, what: str, timeout: float = 90):
    """Wait until ``predicate`` holds once the worker drained what the visitors sent. The
    drain the intake schedules normally does it at once; after a few seconds the periodic
    sweep that Celery beat sends every 5 s in production is sent too (no beat runs here), and
    ``late`` records what was still pending then."""
    from segments.api import get_backend
    from segments.tasks import sweep

    found = wait_for(predicate, timeout=10, interval=0.1)
    if found:
        return found
    late.append((what, get_backend().pending_partitions()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sweep.delay()
        found = wait_for(predicate, timeout=5, interval=0.2)
        if found:
            return found
    return found


def test_an_editor_runs_an_experiment_visitors_convert_and_the_winner_is_promoted(
    driver, live_server, editor, offers, backend, worker, screenshot
):
    base = live_server.url
    log_in(driver, base)
    exp = create_experiment(driver, base, offers, screenshot)
    arms = list(exp.arms.order_by("index"))
    by_key = {a.key: a for a in arms}
    # The default content (the control), then the segment's variants.
    assert [(a.key == "default", a.name) for a in arms] == [
        (True, "Default"),
        (False, "Offer A"),
        (False, "Offer B"),
    ]
    _control, a_arm, b_arm = arms
    # The running experiment is in this process's memory (the live server's) within its TTL.
    assert wait_for(lambda: str(exp.pk) in runtime.running().by_id, timeout=30)

    # Visitors: B's all click the banner, A's first one does, the default's never: B wins.
    sent = {a.index: [0, 0] for a in arms}  # arm -> [visitors, conversions]
    keys: dict[str, int] = {}
    late: list = []  # conversions the intake's own drain did not log within seconds
    with chromium() as browser:
        started = time.monotonic()
        n = 0
        while n < VISITORS or sent[b_arm.index][0] < 2 or sent[a_arm.index][0] < 1:
            assert n < MAX_VISITORS, f"an unlikely split after {n} visitors: {sent}"
            n += 1
            key = new_consented_visitor(browser, base)
            block, variant = seen(browser, base)
            assert variant in by_key, (variant, browser.page_source[:2000])
            arm = by_key[variant]
            # Sticky and deterministic: the arm is the one the visitor's key hashes to.
            assert runtime.running().by_id[str(exp.pk)].fresh_arm(key) == arm.index
            keys[key] = arm.index
            sent[arm.index][0] += 1
            converts = arm == b_arm or (arm == a_arm and sent[arm.index][0] == 1)
            if converts:
                link = block.find_element(By.CSS_SELECTOR, "a")
                click(browser, link)  # the page unloads: the click goes by beacon
                wait(browser).until(gone(link))
                # The worker drained it to the durable log before the visitor's cookie goes.
                assert drained(
                    lambda k=key: LoggedEvent.objects.filter(visitor_key=k, name="click").exists(),
                    late,
                    f"visitor {n}'s click",
                ), f"visitor {n}'s click never reached the log"
                sent[arm.index][1] += 1
            if n == 1:
                screenshot(browser, "visitor")
        visiting = time.monotonic() - started

        # The worker (not this process) drains every visitor into the statistics.
        expected = {(arm, ""): tuple(v) for arm, v in sent.items() if v[0]}
        expected |= {(arm, "spring"): tuple(v) for arm, v in sent.items() if v[0]}

        def counted():
            cells = {
                (s.arm, s.segment): (int(s.n), int(s.sum))
                for s in Statistic.objects.filter(experiment=exp, goal__event="click")
                if s.n
            }
            return cells == expected and cells

        assert drained(counted, late, "the statistics"), (
            list(Statistic.objects.filter(experiment=exp).values("arm", "segment", "n", "sum")),
            expected,
        )
        assert (
            dict(Assignment.objects.filter(experiment=exp).values_list("visitor_key", "arm"))
            == keys
        )
        assert "segments.drain" in worker.log_path.read_text()

        # The editor reads the results: the visitors and conversions the visitors made.
        driver.get(f"{base}/admin/experiments/{exp.pk}/results/")
        wait(driver).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=experiment-results]"))
        )
        screenshot(driver, "results")
        shown = results_table(driver)
        for segment_name in ("All visitors", "Spring"):
            for a in arms:
                visitors, conversions = sent[a.index]
                if not visitors:
                    continue
                assert shown[(segment_name, a.name)] == (
                    visitors,
                    f"{conversions / visitors * 100:.2f}%",
                ), (segment_name, a.name, shown, sent)

        # Promote the winner: B, chosen on the confirmation page.
        driver.get(f"{base}/admin/experiments/edit/{exp.pk}/")
        header_action(driver, "promote")
        radio = wait(driver).until(
            EC.presence_of_element_located(
                (By.CSS_SELECTOR, f"input[type=radio][name=arm][value='{b_arm.index}']")
            )
        )
        click(driver, radio)
        assert radio.is_selected()
        screenshot(driver, "promote")
        click(driver, driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
        wait(driver).until(EC.url_contains(f"/edit/{exp.pk}/"))
        exp.refresh_from_db()
        assert exp.status == Experiment.Status.STOPPED and exp.winner_id == b_arm.pk
        # Logged under the editor's name: the promotion, and the page's published revision.
        assert ModelLogEntry.objects.filter(
            action=actions.PROMOTE, object_id=str(exp.pk), user=editor
        ).exists()
        assert PageLogEntry.objects.filter(
            page=offers, action="wagtail.publish", user=editor
        ).exists()
        # The live server forgets the stopped experiment within its TTL.
        assert wait_for(lambda: str(exp.pk) not in runtime.running().by_id, timeout=30)

        # A new visitor from the campaign sees B, even one the experiment would have given
        # another arm.
        stopped = runtime.build(exp, arms, "spring")
        for _attempt in range(10):
            key = new_consented_visitor(browser, base)
            block, variant = seen(browser, base)
            assert variant == b_arm.key and "Spring offer B" in block.text, (variant, block.text)
            if stopped.fresh_arm(key) != b_arm.index:
                break
        else:
            pytest.fail("ten new visitors all hashed to B")
        screenshot(browser, "after-promote")
    print(f"{n} visitors in {visiting:.1f}s: {sent}; late drains: {late}")
