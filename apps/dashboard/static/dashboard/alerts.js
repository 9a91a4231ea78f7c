"use strict";
// The alerts board: unresolved alerts, critical first and then the longest-standing, polled from the alerts
// API; operators acknowledge and resolve through the same API. Each alert unfolds its event and
// notification history. Rows are updated in place, so a comment being typed survives a refresh.
(function () {
  const { config, api, apiAll, age, formatValue, formatTime, el, pageUrl, errorText, poller } = window.Dashboard;
  const table = document.getElementById("alerts-board");
  if (!table) return;
  const state = document.getElementById("board-state");
  const summary = document.getElementById("board-summary");
  const placeholder = table.querySelector("tbody.board-empty");
  const rows = new Map(); // alert id -> row
  const SEVERITY_RANK = { critical: 0, warning: 1 };

  function order(a, b) {
    return SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || Date.parse(a.opened_at) - Date.parse(b.opened_at) || a.id - b.id;
  }

  function subject(alert) {
    const link = alert.sensor ? el("a", { href: pageUrl(config.sensor_url, alert.sensor_id) }, alert.sensor) : null;
    // An anomaly has no limit to name: the band the readings were expected in and the score say what is wrong.
    if (link && alert.kind === "anomaly") {
      const band = `${formatValue(alert.expected_low, alert.unit)} to ${formatValue(alert.expected_high, alert.unit)}`;
      const score = alert.score == null ? "" : `, score ${alert.score.toFixed(2)}`;
      return el("span", {}, link, el("span", { class: "alert-anomaly" }, ` anomaly (expected ${band}${score})`));
    }
    if (link) return link;
    return el("span", {}, el("a", { href: pageUrl(config.device_url, alert.device) }, alert.device_id), " offline");
  }

  function buildRow(alert) {
    const cells = {};
    for (const name of ["severity", "state", "subject", "location", "value", "peak", "since", "acknowledged"]) {
      cells[name] = el("td", { class: `cell-${name}` });
    }
    const row = { alert, cells, open: false };
    const historyButton = el("button", { type: "button", class: "history-toggle", "aria-expanded": "false" }, "History");
    historyButton.addEventListener("click", () => toggleHistory(row, historyButton));
    const main = el("tr", { class: "alert-row" }, Object.values(cells));
    if (config.can_act) {
      row.input = el("input", { type: "text", class: "action-comment", placeholder: "comment or reason", maxlength: 5000 });
      row.acknowledge = el("button", { type: "button", class: "button-acknowledge", "data-action": "acknowledge" }, "Acknowledge");
      row.resolve = el("button", { type: "button", class: "button-resolve", "data-action": "resolve" }, "Resolve");
      row.message = el("span", { class: "action-message is-error", role: "status" });
      row.acknowledge.addEventListener("click", () => act(row, "acknowledge"));
      row.resolve.addEventListener("click", () => act(row, "resolve"));
      main.append(el("td", { class: "cell-actions" }, row.input, row.acknowledge, row.resolve, row.message));
    }
    main.append(el("td", {}, historyButton));
    row.history = el("td", { colspan: 10, class: "alert-history" });
    row.historyRow = el("tr", { class: "history-row", hidden: true }, row.history);
    row.body = el("tbody", { id: `alert-${alert.id}`, class: "alert", "data-alert-id": alert.id }, main, row.historyRow);
    fill(row, alert);
    return row;
  }

  function fill(row, alert) {
    const { cells } = row;
    row.alert = alert;
    row.body.dataset.state = alert.state;
    row.body.dataset.severity = alert.severity;
    cells.severity.replaceChildren(el("span", { class: `badge severity-${alert.severity}` }, alert.severity));
    cells.state.replaceChildren(el("span", { class: `badge state-${alert.state}` }, alert.state));
    cells.subject.replaceChildren(subject(alert));
    cells.location.textContent = alert.location_path || "–";
    cells.value.textContent = formatValue(alert.value, alert.unit);
    cells.peak.textContent = formatValue(alert.peak_value, alert.unit);
    cells.since.textContent = age((Date.now() - Date.parse(alert.opened_at)) / 1000);
    cells.since.title = formatTime(alert.opened_at);
    cells.acknowledged.textContent = alert.acknowledged_by
      ? `${alert.acknowledged_by}${alert.acknowledge_comment ? `: ${alert.acknowledge_comment}` : ""}`
      : "–";
    if (row.acknowledge) row.acknowledge.hidden = alert.state !== "open";
  }

  function historyTable(headings, items) {
    return el(
      "table",
      { class: "dashboard-table history" },
      el("thead", {}, el("tr", {}, headings.map(([label]) => el("th", {}, label)))),
      el(
        "tbody",
        {},
        items.length
          ? items.map((item) => el("tr", {}, headings.map(([, value]) => el("td", {}, value(item)))))
          : el("tr", {}, el("td", { colspan: headings.length }, "None yet.")),
      ),
    );
  }

  async function loadHistory(row) {
    const detail = await api(`${config.api.alerts}${row.alert.id}/`);
    const notifications = config.api.notifications
      ? await apiAll(config.api.notifications, { alert: row.alert.id, ordering: "created_at" }, 500)
      : null;
    const unit = row.alert.unit;
    row.history.replaceChildren(
      el("h3", {}, "Events"),
      historyTable(
        [
          ["When", (e) => formatTime(e.at)],
          ["What", (e) => e.kind],
          ["Severity", (e) => e.severity],
          ["Value", (e) => formatValue(e.value, unit)],
          ["By", (e) => e.user || "system"],
          ["Comment", (e) => e.comment],
        ],
        detail.events,
      ),
      el("h3", {}, "Notifications"),
      notifications
        ? historyTable(
            [
              ["Created", (n) => formatTime(n.created_at)],
              ["Event", (n) => n.event_kind || n.kind],
              ["Subscription", (n) => n.subscription_name],
              ["Channel", (n) => n.channel],
              ["Target", (n) => n.target],
              ["Status", (n) => el("span", { class: `badge notification-${n.status}` }, n.status)],
              ["Attempts", (n) => n.attempts],
              ["Sent", (n) => formatTime(n.sent_at)],
              ["Last error", (n) => n.last_error],
            ],
            notifications,
          )
        : el("p", {}, "Notification history is not available on this server yet."),
    );
  }

  async function toggleHistory(row, button) {
    row.open = !row.open;
    row.historyRow.hidden = !row.open;
    button.setAttribute("aria-expanded", String(row.open));
    if (row.open) {
      row.history.textContent = "Loading…";
      try {
        await loadHistory(row);
      } catch (error) {
        row.history.textContent = `Could not load the history: ${errorText(error)}`;
      }
    }
  }

  async function act(row, action) {
    const text = row.input.value.trim();
    if (action === "resolve" && !text) {
      row.message.textContent = "Give a reason to resolve.";
      row.input.focus();
      return;
    }
    row.acknowledge.disabled = row.resolve.disabled = true;
    row.message.textContent = "";
    try {
      const body = action === "acknowledge" ? { comment: text } : { reason: text };
      const alert = await api(`${config.api.alerts}${row.alert.id}/${action}/`, { method: "POST", body });
      row.input.value = "";
      if (alert.state === "resolved") {
        row.body.remove();
        rows.delete(alert.id);
        showSummary();
      } else {
        fill(row, alert);
        showSummary();
        if (row.open) await loadHistory(row);
      }
    } catch (error) {
      row.message.textContent = errorText(error);
    } finally {
      row.acknowledge.disabled = row.resolve.disabled = false;
    }
  }

  function showSummary() {
    const alerts = [...rows.values()].map((row) => row.alert);
    const count = (test) => alerts.filter(test).length;
    const parts = [
      [count((a) => a.state === "open" && a.severity === "critical"), "critical open", "severity-critical"],
      [count((a) => a.state === "open" && a.severity === "warning"), "warning open", "severity-warning"],
      [count((a) => a.state === "acknowledged"), "acknowledged", "state-acknowledged"],
    ];
    summary.replaceChildren(...parts.filter(([n]) => n).map(([n, label, cls]) => el("span", { class: `badge ${cls}` }, `${n} ${label}`)));
    placeholder.hidden = rows.size > 0;
    placeholder.querySelector("td").textContent = "No open or acknowledged alerts.";
  }

  async function refresh(isCurrent) {
    try {
      const started = Date.now();
      const alerts = await apiAll(config.api.alerts, { active: "true" });
      if (!isCurrent()) return;
      alerts.sort(order);
      const seen = new Set();
      for (const alert of alerts) {
        seen.add(alert.id);
        let row = rows.get(alert.id);
        if (!row) {
          row = buildRow(alert);
          rows.set(alert.id, row);
        } else {
          fill(row, alert);
          if (row.open) loadHistory(row).catch(() => {});
        }
      }
      for (const [id, row] of rows) {
        if (!seen.has(id)) {
          row.body.remove();
          rows.delete(id);
        }
      }
      // Append in order: moving a row that is already in place does nothing visible.
      const current = [...table.tBodies].filter((body) => body.dataset.alertId);
      const wanted = alerts.map((alert) => rows.get(alert.id).body);
      if (current.length !== wanted.length || current.some((body, index) => body !== wanted[index])) {
        for (const body of wanted) table.append(body);
      }
      showSummary();
      state.dataset.state = "ok";
      state.textContent = `Updated ${new Date(started).toLocaleTimeString()}`;
      if (window.location.hash && !refresh.scrolled) {
        const target = document.getElementById(window.location.hash.slice(1));
        if (target) {
          target.classList.add("highlight");
          target.scrollIntoView({ block: "center" });
          refresh.scrolled = true;
        }
      }
    } catch (error) {
      state.dataset.state = "error";
      state.textContent = `Update failed: ${errorText(error)}`;
    }
  }

  poller(refresh, config.poll_s).now();
})();
