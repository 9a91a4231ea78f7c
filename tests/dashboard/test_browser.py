"""The dashboard pages in headless Chromium against a live server and a real Celery worker: readings go in
through the ingest API, the worker stores and evaluates them, and the pages show it without a reload.

Screenshots of every page land in test-artifacts/dashboard/.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import groupby
from urllib.parse import urlparse

import pytest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.accounts.roles import Role
from apps.anomaly.models import AnomalyRule
from tests.anomaly.learned import learn
from tests.dashboard.browser import console_errors, missing_tools, screenshot, start_chromium, wait_until
from tests.factories import API, make_user

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.skipif(bool(missing_tools()), reason=f"needs {missing_tools()} (bin/ensure-test-tools installs them)"),
]

PASSWORD = "browser-pw-123"
VOLTAGE = "dc-meter-001/voltage_dc"  # thresholds: warning 700-800, critical below 650 or above 850, no minimum duration


def has_url(name: str) -> bool:
    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


needs_alerts = pytest.mark.skipif(not has_url("alert-list"), reason="the alerts API has not landed")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, live_server):
    """Open a path of the live server in the shared browser, signed out first. After the test, the pages
    must have logged no script error and no failed request."""

    def open_path(path: str) -> None:
        browser.get(live_server.url + path)

    browser.get(live_server.url + "/health")
    browser.delete_all_cookies()
    console_errors(browser)
    yield open_path
    assert console_errors(browser) == []


def log_in(browser, page, username: str, *, via_admin: bool) -> None:
    """Sign in through the admin's login form (staff) or the dashboard's (everyone with a role)."""
    page(f"{reverse('admin:login')}?next=/ops/" if via_admin else reverse("dashboard:login"))
    browser.find_element("name", "username").send_keys(username)
    browser.find_element("name", "password").send_keys(PASSWORD)
    browser.find_element("css selector", "#login-form [type=submit]").click()
    wait_until(browser, lambda d: urlparse(d.current_url).path == "/ops/", what=f"{username} signed in")


def ingest(client, wait_for, readings: list[dict]) -> None:
    """POST readings and wait until the worker has stored them."""
    response = client.post(f"{API}/ingest/", {"readings": readings}, format="json")
    assert response.status_code == 202, response.content
    batch = f"{API}/ingest/batches/{response.json()['batch_id']}/"
    body = wait_for(lambda: (b := client.get(batch).json())["status"] in ("done", "failed") and b, timeout=30)
    assert (body["status"], body["stored"]) == ("done", len(readings)), body


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def breach(client, wait_for) -> dict:
    """A critical voltage reading, and the alert the worker opens for it."""
    ingest(client, wait_for, [{"sensor": VOLTAGE, "ts": iso(timezone.now()), "value": 900.0}])
    return wait_for(
        lambda: next(iter(client.get(f"{API}/alerts/", {"sensor": VOLTAGE, "active": "true"}).json()["results"]), None),
        timeout=30,
    )


def tile_status(browser, key: str) -> str | None:
    return browser.execute_script(
        "const tile = document.querySelector(`.tile[data-sensor='${arguments[0]}']`); return tile && tile.dataset.status;",
        key,
    )


def test_a_tile_turns_critical_without_a_reload_when_a_breaching_reading_arrives(
    world, celery_worker, admin_api, browser, page, wait_for
):
    make_user("operator", Role.OPERATOR, password=PASSWORD)
    ingest(admin_api, wait_for, [{"sensor": VOLTAGE, "ts": iso(timezone.now()), "value": 750.0}])
    log_in(browser, page, "operator", via_admin=True)

    wait_until(browser, lambda d: tile_status(d, VOLTAGE) == "normal", what="voltage tile normal")
    browser.execute_script("window.sameDocument = true;")
    ingest(admin_api, wait_for, [{"sensor": VOLTAGE, "ts": iso(timezone.now()), "value": 900.0}])

    wait_until(browser, lambda d: tile_status(d, VOLTAGE) == "critical", what="voltage tile critical")
    assert browser.execute_script("return window.sameDocument") is True, "the page reloaded"
    tile_text = browser.find_element("css selector", f".tile[data-sensor='{VOLTAGE}']").text
    assert "900 V" in tile_text and "ago" in tile_text, tile_text
    assert "DC voltage" in tile_text, tile_text  # the type's name, looked up by the row's sensor_type_code
    assert tile_status(browser, "env-001/temperature") == "stale"  # never reported
    if has_url("alert-list"):
        # The alert the breach opened is counted at its area and at every location above it.
        for location in (world.area_a1_north, world.floor_a1, world.building_a, world.factory):
            wait_until(
                browser,
                lambda d, pk=location.pk: (
                    d.execute_script(
                        f"return document.querySelector('[data-location=\"{pk}\"] > summary .alert-count').dataset.open"
                    )
                    == "1"
                ),
                what=f"one open alert counted at {location.name}",
            )
        badge = f"[data-location='{world.building_b.pk}'] > summary .alert-count"
        assert browser.find_element("css selector", badge).get_attribute("data-open") == "0"
    screenshot(browser, "overview")

    # Device search: only env-002's tiles stay visible, and locations without a match fold away.
    browser.find_element("id", "filter-device").send_keys("env-002")
    visible = wait_until(
        browser,
        lambda d: (
            (
                keys := [
                    t.get_attribute("data-sensor") for t in d.find_elements("css selector", ".tile") if t.is_displayed()
                ]
            )
            and len(keys) == 2
            and keys
        ),
        what="only env-002 tiles shown",
    )
    assert sorted(visible) == ["env-002/humidity", "env-002/temperature"]
    assert browser.find_element("css selector", f"[data-location='{world.building_b.pk}']").is_displayed()
    assert not browser.find_element("css selector", f"[data-location='{world.building_a.pk}']").is_displayed()
    screenshot(browser, "overview-device-search")

    # Sensor type filter: asked of the API, so only humidity tiles remain.
    browser.find_element("id", "filter-device").clear()
    browser.execute_script(
        "const select = document.getElementById('filter-type'); select.value = 'humidity';"
        "select.dispatchEvent(new Event('change'));"
    )
    wait_until(
        browser,
        lambda d: d.execute_script(
            "const keys = [...document.querySelectorAll('.tile')].map(t => t.dataset.sensor);"
            "return keys.length === 2 && keys.every(k => k.endsWith('/humidity'));"
        ),
        what="only humidity tiles",
    )
    assert "type=humidity" in browser.current_url
    assert browser.execute_script("return window.sameDocument") is True


def chart_points(browser, dataset: int = 0) -> list[list[float]]:
    return browser.execute_script(
        "const chart = Chart.getChart(document.getElementById('sensor-chart'));"
        "return chart.data.datasets[arguments[0]].data.map(point => [point.x, point.y]);",
        dataset,
    )


def value_axis(browser) -> tuple[float, float]:
    """The range of the sensor chart's value axis as Chart.js drew it."""
    low, high = browser.execute_script(
        "const y = Chart.getChart(document.getElementById('sensor-chart')).scales.y; return [y.min, y.max];"
    )
    return low, high


def legend(browser) -> list[str]:
    return browser.execute_script(
        "return Chart.getChart(document.getElementById('sensor-chart')).legend.legendItems.map(item => item.text)"
    )


def assert_axis_follows(axis: tuple[float, float], values: list[float]) -> None:
    """The axis holds every value with a little room, at most a quarter of their spread on each side."""
    low, high = min(values), max(values)
    room = (high - low) / 4
    assert low - room <= axis[0] < low and high < axis[1] <= high + room, (axis, values)


def test_the_sensor_chart_draws_the_ingested_readings_and_the_threshold_bands(
    world, celery_worker, admin_api, browser, page, wait_for
):
    sensor = world.sensors["env-001/temperature"]
    now = timezone.now().replace(microsecond=0)
    moments = [now - timedelta(minutes=minutes) for minutes in (50, 40, 30, 20, 10)]
    values = [20.5, 21.0, 22.25, 23.0, 24.0]
    ingest(
        admin_api,
        wait_for,
        [
            {"sensor": sensor.key, "ts": iso(moment), "value": value}
            for moment, value in zip(moments, values, strict=True)
        ],
    )
    make_user("viewer", Role.VIEWER, password=PASSWORD)
    log_in(browser, page, "viewer", via_admin=False)

    page(reverse("dashboard:sensor", args=[sensor.pk]) + "?range=hour")
    wait_until(
        browser, lambda d: d.find_element("id", "sensor-chart").get_attribute("data-state") == "ready", what="chart"
    )

    expected = [[moment.timestamp() * 1000, value] for moment, value in zip(moments, values, strict=True)]
    assert chart_points(browser) == expected
    lines = browser.execute_script(
        "return Chart.getChart(document.getElementById('sensor-chart')).options.plugins.dashboardShading.lines"
        ".map(line => line.value)"
    )
    assert sorted(lines) == [0, 5, 30, 40]
    # The axis follows the readings (20.5 to 24 °C), not the bands (0 to 40 °C), which are all outside it: the
    # legend gives their limits and says where they are.
    assert_axis_follows(value_axis(browser), values)
    assert legend(browser) == [
        "readings",
        "warning band: < 5 °C (below the chart), > 30 °C (above the chart)",
        "critical band: < 0 °C (below the chart), > 40 °C (above the chart)",
    ]
    screenshot(browser, "sensor-hour")

    if has_url("export-readings"):
        csv = browser.execute_async_script(
            "const done = arguments[0];"
            "fetch(document.getElementById('export-csv').href, {credentials: 'same-origin'})"
            ".then(r => r.text()).then(done, e => done(String(e)));"
        )
        assert all(f"{value}" in csv for value in ("20.5", "22.25", "24.0")), csv

    if has_url("aggregates"):
        # A week is drawn from hourly buckets: the average line equals the mean of each hour's readings.
        browser.find_element("css selector", "[data-range=week]").click()
        wait_until(
            browser,
            lambda d: (
                d.find_element("id", "sensor-chart").get_attribute("data-resolution") == "hour"
                and d.find_element("id", "sensor-chart").get_attribute("data-state") == "ready"
            ),
            what="hourly chart",
        )
        hourly = [
            [hour.timestamp() * 1000, sum(v for _, v in group) / len(group)]
            for hour, group in (
                (hour, list(group))
                for hour, group in groupby(
                    zip(moments, values, strict=True), key=lambda mv: mv[0].replace(minute=0, second=0)
                )
            )
        ]
        labels = browser.execute_script(
            "return Chart.getChart(document.getElementById('sensor-chart')).data.datasets.map(d => d.label)"
        )
        assert labels == ["min", "max", "average"]
        assert [[x, pytest.approx(y)] for x, y in chart_points(browser, 2)] == hourly
        assert_axis_follows(value_axis(browser), values)
        assert legend(browser)[:2] == ["min–max per hour", "average per hour"]
        screenshot(browser, "sensor-week")


def shaded(browser, value: float) -> dict:
    """The colour the sensor chart's canvas has at `value`, left of the first reading (where no line, episode or
    grid line is drawn), and whether it is the warning band's amber."""
    red, green, blue, alpha = browser.execute_script(
        """
        const chart = Chart.getChart(document.getElementById('sensor-chart'));
        const { chartArea: area, scales: { x, y } } = chart;
        const first = x.getPixelForValue(chart.data.datasets[0].data[0].x);
        const ticks = x.ticks.map((tick) => x.getPixelForValue(tick.value));
        const candidates = [0.25, 0.5, 0.75].map((share) => area.left + (first - area.left) * share);
        const distance = (px) => Math.min(...ticks.map((tick) => Math.abs(tick - px)), Infinity);
        const column = candidates.sort((a, b) => distance(b) - distance(a))[0];
        const ratio = chart.currentDevicePixelRatio;
        const context = chart.canvas.getContext('2d');
        return [...context.getImageData(column * ratio, y.getPixelForValue(arguments[0]) * ratio, 1, 1).data];
        """,
        value,
    )
    return {"amber": alpha > 20 and red > 200 and blue < 80, "empty": alpha < 10}


def between_ticks(browser, low: float, high: float) -> float:
    """A value halfway between two neighbouring ticks of the value axis, within [low, high]: no grid line there."""
    ticks = browser.execute_script(
        "return Chart.getChart(document.getElementById('sensor-chart')).scales.y.ticks.map(tick => tick.value)"
    )
    return next((a + b) / 2 for a, b in zip(ticks, ticks[1:], strict=False) if low <= a and b <= high)


@needs_alerts
def test_the_sensor_chart_shades_the_bands_that_fall_in_the_range_of_the_data(
    world, celery_worker, admin_api, browser, page, wait_for
):
    sensor = world.sensors[VOLTAGE]
    now = timezone.now().replace(microsecond=0)
    moments = [now - timedelta(minutes=minutes) for minutes in (50, 40, 30, 20, 10)]
    values = [790.0, 805.0, 812.0, 808.0, 820.0]  # up into the warning band (above 800 V) to stay, far from critical
    ingest(
        admin_api,
        wait_for,
        [{"sensor": VOLTAGE, "ts": iso(m), "value": v} for m, v in zip(moments, values, strict=True)],
    )
    wait_for(lambda: admin_api.get(f"{API}/alerts/", {"sensor": VOLTAGE, "active": "true"}).json()["count"], timeout=30)
    make_user("viewer", Role.VIEWER, password=PASSWORD)
    log_in(browser, page, "viewer", via_admin=False)

    page(reverse("dashboard:sensor", args=[sensor.pk]) + "?range=hour")
    wait_until(
        browser, lambda d: d.find_element("id", "sensor-chart").get_attribute("data-state") == "ready", what="chart"
    )

    axis = value_axis(browser)
    assert_axis_follows(axis, values)
    assert 800 < axis[1] < 850 and 700 < axis[0] < 800
    assert legend(browser) == [
        "readings",
        "warning band: < 700 V (below the chart), > 800 V",
        "critical band: < 650 V (below the chart), > 850 V (above the chart)",
        "1 warning alert episode",
    ]
    # The warning band is shaded above 800 V up to the top of the chart; below it the chart is empty.
    assert shaded(browser, between_ticks(browser, 800, axis[1]))["amber"]
    assert shaded(browser, between_ticks(browser, axis[0], 800))["empty"]
    screenshot(browser, "sensor-bands")


@needs_alerts
def test_the_sensor_chart_shades_alert_episodes(world, celery_worker, admin_api, browser, page, wait_for):
    alert = breach(admin_api, wait_for)
    # After the breach, so the worker has learned nothing into it: a rule, and a state learned at 899 V.
    AnomalyRule.objects.create(sensor=world.sensors[VOLTAGE])
    learn(alert["sensor_id"], until=timezone.now() - timedelta(hours=1), days=2, level=899.0, cycle=False)
    make_user("viewer", Role.VIEWER, password=PASSWORD)
    log_in(browser, page, "viewer", via_admin=False)

    page(reverse("dashboard:sensor", args=[alert["sensor_id"]]))
    wait_until(
        browser, lambda d: d.find_element("id", "sensor-chart").get_attribute("data-state") == "ready", what="chart"
    )

    spans = browser.execute_script(
        "return Chart.getChart(document.getElementById('sensor-chart')).options.plugins.dashboardShading.spans"
        ".map(span => ({from: span.from, to: span.to, color: span.color}))"
    )
    assert len(spans) == 1 and spans[0]["color"].startswith("rgba(211, 47, 47")  # critical
    assert "critical" in browser.find_element("id", "episodes").text
    # The anomaly model's band is drawn as a shaded dataset over the range, with its own legend entry.
    band = browser.execute_script(
        "return Chart.getChart(document.getElementById('sensor-chart')).data.datasets"
        ".filter(d => d.label === 'expected (anomaly model)').map(d => ({fill: d.fill, points: d.data.length}))"
    )
    assert browser.find_element("id", "sensor-chart").get_attribute("data-band") == "ready"
    assert [dataset["fill"] for dataset in band] == ["-1"] and band[0]["points"] >= 2, band
    assert "expected (anomaly model)" in legend(browser)
    screenshot(browser, "sensor-alert-episode")


def board_row(browser, alert_id: int):
    return wait_until(
        browser, lambda d: d.find_elements("id", f"alert-{alert_id}"), what=f"alert {alert_id} on the board"
    )[0]


@needs_alerts
def test_an_operator_acknowledges_an_alert_from_the_board(world, celery_worker, admin_api, browser, page, wait_for):
    notified = has_url("subscription-list")
    if notified:  # SMS through the console backend: delivered at once, so the history has a sent notification
        channels = [{"type": "sms", "target": "+15550100"}]
        subscription = {"name": "Night shift", "contact": "Night shift", "channels": channels}
        assert admin_api.post(f"{API}/subscriptions/", subscription, format="json").status_code == 201
    alert = breach(admin_api, wait_for)
    if notified:
        wait_for(
            lambda: admin_api.get(f"{API}/notifications/", {"alert": alert["id"], "status": "sent"}).json()["count"],
            timeout=30,
        )
    make_user("operator", Role.OPERATOR, password=PASSWORD)
    log_in(browser, page, "operator", via_admin=True)

    page(reverse("dashboard:alerts"))
    row = board_row(browser, alert["id"])
    assert row.get_attribute("data-state") == "open"
    row.find_element("css selector", "input.action-comment").send_keys("Checking the rectifier")
    row.find_element("css selector", "button.button-acknowledge").click()

    wait_until(browser, lambda d: row.get_attribute("data-state") == "acknowledged", what="row acknowledged")
    body = admin_api.get(f"{API}/alerts/{alert['id']}/").json()
    assert (body["state"], body["acknowledged_by"], body["acknowledge_comment"]) == (
        "acknowledged",
        "operator",
        "Checking the rectifier",
    )
    row.find_element("css selector", "button.history-toggle").click()
    wait_until(
        browser, lambda d: "acknowledged" in row.find_element("css selector", ".alert-history").text, what="history"
    )
    history = row.find_element("css selector", ".alert-history").text
    assert "Notifications" in history
    if notified:
        assert "Night shift" in history and "+15550100" in history and "sent" in history
    screenshot(browser, "alerts-board-operator")

    # Resolving by hand needs a reason; with one, the alert leaves the board.
    row.find_element("css selector", "button.button-resolve").click()
    assert row.find_element("css selector", ".action-message").text == "Give a reason to resolve."
    row.find_element("css selector", "input.action-comment").send_keys("Rectifier replaced")
    row.find_element("css selector", "button.button-resolve").click()
    wait_until(browser, lambda d: not d.find_elements("id", f"alert-{alert['id']}"), what="resolved alert gone")
    body = admin_api.get(f"{API}/alerts/{alert['id']}/").json()
    assert (body["state"], body["resolved_by"], body["resolution_reason"]) == (
        "resolved",
        "operator",
        "Rectifier replaced",
    )
    assert "No open or acknowledged alerts." in browser.find_element("id", "alerts-board").text


@needs_alerts
def test_a_viewer_sees_the_board_without_buttons(world, celery_worker, admin_api, browser, page, wait_for):
    alert = breach(admin_api, wait_for)
    make_user("viewer", Role.VIEWER, password=PASSWORD)
    log_in(browser, page, "viewer", via_admin=False)

    page(reverse("dashboard:alerts"))
    row = board_row(browser, alert["id"])

    assert row.get_attribute("data-state") == "open"
    assert (
        browser.find_elements("css selector", "button.button-acknowledge, button.button-resolve, .action-comment") == []
    )
    assert [button.text for button in row.find_elements("css selector", "button")] == ["History"]
    screenshot(browser, "alerts-board-viewer")


def test_the_device_page_shows_connectivity_and_sends_a_command(
    world, celery_worker, admin_api, browser, page, wait_for
):
    device = world.devices["dc-meter-001"]
    ingest(admin_api, wait_for, [{"sensor": VOLTAGE, "ts": iso(timezone.now()), "value": 751.0}])
    make_user("operator", Role.OPERATOR, password=PASSWORD)
    log_in(browser, page, "operator", via_admin=True)

    page(reverse("dashboard:device", args=[device.pk]))
    canvas = wait_until(
        browser,
        lambda d: (c := d.find_element("id", "connectivity-chart")).get_attribute("data-state") == "ready" and c,
        what="connectivity chart",
    )
    assert browser.find_element("id", "device-connection").text == "online"
    if has_url("aggregates"):
        hours = browser.execute_script(
            "return Chart.getChart(arguments[0]).data.datasets[0].data.map(point => [point.x, point.y])", canvas
        )
        # One point per hour of the week (the last one repeated to close the step), one reading in all.
        assert len(hours) in (7 * 24 + 1, 7 * 24 + 2)
        assert sum(count for _, count in hours[:-1]) == 1

    if has_url("command-list"):
        form = browser.find_element("id", "command-form")
        form.find_element("name", "cmd").send_keys("set_interval")
        params = form.find_element("name", "params")
        params.clear()
        params.send_keys('{"seconds": 30}')
        form.find_element("css selector", "button[type=submit]").click()
        row = wait_until(
            browser,
            lambda d: d.find_elements("css selector", "#commands tr[data-command]"),
            what="the command listed",
        )[0]
        assert "set_interval" in row.text and '{"seconds":30}' in row.text
        commands = admin_api.get(f"{API}/devices/{device.pk}/commands/").json()["results"]
        assert [(c["cmd"], c["params"], c["created_by"]) for c in commands] == [
            ("set_interval", {"seconds": 30}, "operator")
        ]
    screenshot(browser, "device")
