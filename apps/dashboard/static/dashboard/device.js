"use strict";
// The device page: connection status and last seen kept current, a connectivity timeline (readings per hour
// with offline periods shaded), recent commands with their status, and the send-command form for operators.
(function () {
  const { config, api, apiAll, age, formatTime, el, errorText, poller } = window.Dashboard;
  if (!window.DashboardCharts) return;
  const { COLORS, timeScale } = window.DashboardCharts;
  const WINDOW_MS = 7 * 86400e3;
  const HOUR_MS = 3600e3;
  const connection = document.getElementById("device-connection");
  const lastSeen = document.getElementById("device-last-seen");
  const firmware = document.getElementById("device-firmware");
  const connectivityState = document.getElementById("connectivity-state");
  const canvas = document.getElementById("connectivity-chart");
  const commandsBody = document.querySelector("#commands tbody");
  const form = document.getElementById("command-form");
  let device = null;

  const chart = new window.Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      parsing: false,
      maintainAspectRatio: false,
      scales: { x: timeScale(Date.now() - WINDOW_MS, Date.now()), y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "readings / h" } } },
      plugins: {
        legend: { display: false },
        dashboardShading: { spans: [] },
        tooltip: { callbacks: { title: (items) => (items.length ? formatTime(items[0].parsed.x) : "") } },
      },
    },
  });

  function showDevice(current) {
    device = current;
    connection.textContent = current.connection_status;
    connection.className = `badge connection-${current.connection_status}`;
    lastSeen.dataset.ts = current.last_seen || "";
    firmware.textContent = current.fw_version || "–";
    showLastSeen();
  }

  function showLastSeen() {
    const ts = lastSeen.dataset.ts;
    lastSeen.textContent = ts ? `${formatTime(ts)} (${age((Date.now() - Date.parse(ts)) / 1000)} ago)` : "never";
  }

  // Offline periods: device-offline alerts overlapping the window, and the current silence if it is offline.
  async function offlineSpans(start, end) {
    const spans = [];
    if (config.api.alerts) {
      const filters = { kind: "device_offline", device: config.device.id };
      const [atStart, opened] = await Promise.all([
        apiAll(config.api.alerts, { ...filters, active_at: new Date(start).toISOString() }, 1000),
        apiAll(config.api.alerts, { ...filters, opened_after: new Date(start).toISOString() }, 1000),
      ]);
      for (const alert of [...atStart, ...opened]) {
        spans.push({ from: Date.parse(alert.breach_started_at), to: alert.resolved_at ? Date.parse(alert.resolved_at) : end });
      }
    }
    if (device && device.connection_status === "offline") {
      const since = device.offline_since || device.last_seen;
      spans.push({ from: since ? Date.parse(since) : start, to: end });
    }
    return spans.map((span) => ({ ...span, color: COLORS.offline }));
  }

  async function readingsPerHour(start, end) {
    if (!config.api.aggregates || !config.sensor_ids.length) return [];
    const answer = await api(config.api.aggregates, {
      params: {
        sensor: config.sensor_ids.join(","),
        interval: "hour",
        functions: "count",
        group_by: "all",
        start: new Date(start).toISOString(),
        end: new Date(end).toISOString(),
      },
    });
    const counts = new Map();
    for (const bucket of answer.series.length ? answer.series[0].buckets : []) counts.set(Date.parse(bucket.bucket), bucket.count);
    // Every hour of the window, silent ones as zero, and one closing point: a stepped line draws a histogram.
    const points = [];
    for (let hour = Math.floor(start / HOUR_MS) * HOUR_MS; hour <= end; hour += HOUR_MS) {
      points.push({ x: hour, y: counts.get(hour) || 0 });
    }
    points.push({ x: points[points.length - 1].x + HOUR_MS, y: points[points.length - 1].y });
    return points;
  }

  async function loadConnectivity(isCurrent) {
    const end = Date.now();
    const start = end - WINDOW_MS;
    const [points, spans] = await Promise.all([readingsPerHour(start, end), offlineSpans(start, end)]);
    if (!isCurrent()) return;
    chart.data.datasets = [
      {
        label: "readings",
        data: points,
        stepped: "after",
        fill: "origin",
        borderColor: COLORS.line,
        backgroundColor: COLORS.band,
        borderWidth: 1,
        pointRadius: 0,
      },
    ];
    chart.options.scales.x = timeScale(start, end);
    chart.options.plugins.dashboardShading.spans = spans;
    chart.update();
    canvas.dataset.state = "ready";
    connectivityState.dataset.state = "ok";
    connectivityState.textContent = config.api.aggregates ? "" : "Reading counts are not available on this server yet.";
  }

  function commandRow(command) {
    const answer = command.result ? JSON.stringify(command.result) : command.ack_detail;
    return el(
      "tr",
      { "data-command": command.cmd_id, "data-status": command.status },
      el("td", { title: command.cmd_id }, formatTime(command.created_at)),
      el("td", {}, command.cmd),
      el("td", {}, el("code", {}, JSON.stringify(command.params))),
      el("td", {}, el("span", { class: `badge command-${command.status}` }, command.status)),
      el("td", {}, command.created_by || "–"),
      el("td", {}, command.sent_at ? `${formatTime(command.sent_at)} (${command.send_count}×)` : "–"),
      el("td", {}, command.acked_at ? formatTime(command.acked_at) : "–"),
      el("td", {}, answer || "–"),
    );
  }

  async function loadCommands(isCurrent) {
    if (!config.api.commands) return;
    const page = await api(config.api.commands, { params: { page_size: 20, ordering: "-created_at" } });
    if (!isCurrent()) return;
    const rows = page.results.map(commandRow);
    commandsBody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 8 }, "No commands yet."))]));
  }

  async function refresh(isCurrent) {
    try {
      const current = await api(config.api.device);
      if (!isCurrent()) return;
      showDevice(current);
      await Promise.all([loadConnectivity(isCurrent), loadCommands(isCurrent)]);
    } catch (error) {
      connectivityState.dataset.state = "error";
      connectivityState.textContent = `Update failed: ${errorText(error)}`;
    }
  }

  const polling = poller(refresh, config.poll_s);

  if (form) {
    const message = document.getElementById("command-message");
    const say = (text, isError) => {
      message.textContent = text;
      message.classList.toggle("is-error", isError);
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = new FormData(form);
      let params;
      try {
        params = JSON.parse(fields.get("params") || "{}");
      } catch (error) {
        say("Parameters must be JSON, e.g. {\"seconds\": 60}.", true);
        return;
      }
      const body = { cmd: fields.get("cmd").trim(), params };
      if (fields.get("ttl_s")) body.ttl_s = Number(fields.get("ttl_s"));
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const command = await api(config.api.commands, { method: "POST", body });
        say(`Sent ${command.cmd}: ${command.status}.`, false);
        form.elements.cmd.value = "";
        polling.now();
      } catch (error) {
        say(errorText(error), true);
      } finally {
        button.disabled = false;
      }
    });
  }

  setInterval(showLastSeen, 1000);
  polling.now();
})();
