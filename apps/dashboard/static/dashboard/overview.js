"use strict";
// The plant overview: sensor tiles placed in the server-rendered location tree, coloured by the status the
// realtime API computes, and open-alert counts per subtree; both polled, so the page never reloads.
(function () {
  const { config, api, apiAll, age, formatValue, el, pageUrl, errorText, poller } = window.Dashboard;
  const typeSelect = document.getElementById("filter-type");
  const deviceInput = document.getElementById("filter-device");
  const summary = document.getElementById("status-summary");
  const refreshState = document.getElementById("refresh-state");
  const typeNames = Object.fromEntries(config.sensor_types.map((type) => [type.code, type.name]));
  const STATUSES = ["critical", "warning", "normal", "stale"];

  // Location id ("" for sensors without one) -> its element, tile container, alert badge and ancestor ids.
  const locations = new Map();
  for (const element of document.querySelectorAll("details.location")) {
    locations.set(element.dataset.location, {
      element,
      tiles: element.querySelector(":scope > .tiles"),
      badge: element.querySelector(":scope > summary > .alert-count"),
      lineage: element.dataset.path.split("/").filter(Boolean),
    });
  }
  const tiles = new Map(); // sensor id -> {element, row}
  let clock = null; // the server's time at a known moment of ours, so ages need no synchronised clocks

  const query = new URLSearchParams(window.location.search);
  typeSelect.value = query.get("type") || "";
  deviceInput.value = query.get("q") || "";

  function serverNow() {
    return clock ? clock.server + (Date.now() - clock.local) : Date.now();
  }

  function place(row) {
    const known = locations.get(row.location === null ? "" : String(row.location));
    return known || locations.get("");
  }

  function tileFor(row) {
    let tile = tiles.get(row.sensor_id);
    if (!tile) {
      const parts = {
        device: el("a", { class: "tile-device", href: pageUrl(config.device_url, row.device) }),
        type: el("span", { class: "tile-type" }),
        value: el("span", { class: "tile-value" }),
        age: el("span", { class: "tile-age" }),
      };
      const link = el("a", { class: "tile-main", href: pageUrl(config.sensor_url, row.sensor_id) }, parts.type, parts.value, parts.age);
      tile = { element: el("div", { class: "tile" }, parts.device, link), parts, row: null };
      tiles.set(row.sensor_id, tile);
    }
    return tile;
  }

  function updateTile(row) {
    const tile = tileFor(row);
    const { element, parts } = tile;
    tile.row = row;
    element.className = `tile status-${row.status}`;
    element.dataset.status = row.status;
    element.dataset.sensor = row.sensor;
    element.dataset.device = row.device_id;
    element.title = `${row.sensor}: ${row.status}`;
    parts.device.textContent = row.device_id;
    parts.type.textContent = typeNames[row.sensor_type_code] || row.sensor_type_code;
    parts.value.textContent = formatValue(row.value, row.unit);
    const container = place(row).tiles;
    if (element.parentElement !== container) container.append(element);
  }

  function updateAges() {
    const now = serverNow();
    for (const { row, parts } of tiles.values()) {
      const text = row.ts ? `${age((now - Date.parse(row.ts)) / 1000)} ago` : "no data";
      if (parts.age.textContent !== text) parts.age.textContent = text;
    }
  }

  // Device search hides tiles; with any filter on, locations without a matching sensor below them hide too.
  function applyFilters() {
    const needle = deviceInput.value.trim().toLowerCase();
    const filtering = Boolean(needle || typeSelect.value);
    const shownBelow = new Map();
    const counts = Object.fromEntries(STATUSES.map((status) => [status, 0]));
    for (const { element, row } of tiles.values()) {
      const shown = !needle || row.device_id.toLowerCase().includes(needle) || row.sensor.toLowerCase().includes(needle);
      element.hidden = !shown;
      if (!shown) continue;
      counts[row.status] += 1;
      const home = place(row);
      for (const id of home.lineage.length ? home.lineage : [""]) shownBelow.set(id, (shownBelow.get(id) || 0) + 1);
    }
    for (const [id, location] of locations) {
      const empty = !shownBelow.get(id);
      location.element.hidden = id === "" ? empty : filtering && empty;
    }
    summary.replaceChildren(
      ...STATUSES.filter((status) => counts[status]).map((status) =>
        el("span", { class: `status-count status-${status}` }, `${counts[status]} ${status}`),
      ),
    );
  }

  async function loadRealtime(isCurrent) {
    const params = { page_size: 10000, sensor_type: typeSelect.value };
    let page = await api(config.api.realtime, { params });
    const rows = [...page.results];
    for (let number = 2; rows.length < page.count && number <= 10; number += 1) {
      page = await api(config.api.realtime, { params: { ...params, page: number } });
      rows.push(...page.results);
    }
    if (!isCurrent()) return;
    clock = { server: Date.parse(page.generated_at), local: Date.now() };
    const seen = new Set();
    for (const row of rows) {
      updateTile(row);
      seen.add(row.sensor_id);
    }
    for (const [id, tile] of tiles) {
      if (!seen.has(id)) {
        tile.element.remove();
        tiles.delete(id);
      }
    }
  }

  // Unresolved alerts counted at their location and every location above it.
  async function loadAlertCounts(isCurrent) {
    if (!config.api.alerts) return;
    const alerts = await apiAll(config.api.alerts, { active: "true", sensor_type: typeSelect.value });
    if (!isCurrent()) return;
    const counts = new Map();
    for (const alert of alerts) {
      const home = locations.get(alert.location === null ? "" : String(alert.location));
      for (const id of home && home.lineage.length ? home.lineage : [""]) {
        const count = counts.get(id) || { open: 0, acknowledged: 0, critical: false };
        count[alert.state === "acknowledged" ? "acknowledged" : "open"] += 1;
        count.critical = count.critical || (alert.state === "open" && alert.severity === "critical");
        counts.set(id, count);
      }
    }
    for (const [id, { badge }] of locations) {
      if (!badge) continue;
      const count = counts.get(id) || { open: 0, acknowledged: 0, critical: false };
      badge.dataset.open = count.open;
      badge.dataset.acknowledged = count.acknowledged;
      badge.hidden = !(count.open || count.acknowledged);
      badge.className = `alert-count ${count.critical ? "severity-critical" : count.open ? "severity-warning" : "severity-acknowledged"}`;
      badge.textContent = [count.open && `${count.open} open`, count.acknowledged && `${count.acknowledged} acknowledged`]
        .filter(Boolean)
        .join(" · ");
      badge.title = "Unresolved alerts in this location and below";
    }
  }

  async function refresh(isCurrent) {
    try {
      await Promise.all([loadRealtime(isCurrent), loadAlertCounts(isCurrent)]);
      if (!isCurrent()) return;
      applyFilters();
      updateAges();
      refreshState.dataset.state = "ok";
      refreshState.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      refreshState.dataset.state = "error";
      refreshState.textContent = `Update failed: ${errorText(error)}`;
    }
  }

  function rememberFilters() {
    const params = new URLSearchParams();
    if (typeSelect.value) params.set("type", typeSelect.value);
    if (deviceInput.value.trim()) params.set("q", deviceInput.value.trim());
    const search = params.toString();
    window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
  }

  const polling = poller(refresh, config.poll_s);
  typeSelect.addEventListener("change", () => {
    rememberFilters();
    polling.now();
  });
  deviceInput.addEventListener("input", () => {
    rememberFilters();
    applyFilters();
  });
  setInterval(updateAges, 1000);
  polling.now();
})();
