"use strict";
// The sensor page: readings over the last hour, day, week or month (raw points, or buckets from the aggregates
// API drawn as a min-max band with the average) on a value axis that follows them, the effective threshold
// bands where they fall in that range, alert episodes shaded, the anomaly model's expected band where the
// sensor has one, a legend naming all of it, and export links for the range shown.
(function () {
  const { config, api, apiAll, ApiError, formatValue, formatTime, el, errorText, poller, withParams } =
    window.Dashboard;
  if (!window.DashboardCharts) return;
  const { COLORS, thresholdShading, thresholdLegend, timeScale, valueAxis } = window.DashboardCharts;
  const RANGES = { hour: 3600e3, day: 86400e3, week: 7 * 86400e3, month: 30 * 86400e3 };
  // Raw readings while a range stays within a few thousand points at usual rates; rollups beyond.
  const AUTO_RESOLUTION = { hour: "raw", day: "raw", week: "hour", month: "day" };
  const MAX_RAW_POINTS = 50000;
  const REFRESH_S = 60;
  const unit = config.sensor.unit;
  const EXPECTED_LABEL = "expected (anomaly model)";
  const EXPECTED_LOW = "expected low";

  const canvas = document.getElementById("sensor-chart");
  const state = document.getElementById("chart-state");
  const resolutionSelect = document.getElementById("chart-resolution");
  const rangeButtons = document.querySelectorAll("[data-range]");
  const episodesBody = document.querySelector("#episodes tbody");
  const exportLinks = { csv: document.getElementById("export-csv"), xlsx: document.getElementById("export-xlsx") };
  const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

  const query = new URLSearchParams(window.location.search);
  let range = RANGES[query.get("range")] ? query.get("range") : "hour";
  resolutionSelect.value = query.get("points") || "auto";
  if (!resolutionSelect.value) resolutionSelect.value = "auto";

  const thresholds = thresholdShading(config.thresholds);
  // The value axis follows the data; only a chart without data spans the thresholds' bounds instead.
  const bounds = config.thresholds
    .flatMap((t) => [t.critical_low, t.warning_low, t.warning_high, t.critical_high])
    .filter((v) => v !== null);
  // What the legend shows besides the datasets (the bands, the alert episodes), and the buckets' interval.
  let legendExtras = [];
  let shownInterval = "raw";
  const legendDefaults = window.Chart.defaults.plugins.legend;
  const chart = new window.Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      parsing: false,
      normalized: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: {
        x: timeScale(Date.now() - RANGES[range], Date.now()),
        y: { title: { display: Boolean(unit), text: unit } },
      },
      plugins: {
        decimation: { enabled: true, algorithm: "lttb", samples: 1500, threshold: 3000 },
        dashboardShading: { ...thresholds, spans: [] },
        legend: {
          labels: {
            // The min and max datasets draw one band: a single legend entry for both.
            // So do the low and high datasets of the expected band.
            filter: (item) => item.text !== "min" && item.text !== EXPECTED_LOW,
            generateLabels: (chartOf) => {
              const bucketTexts = { max: `min–max per ${shownInterval}`, average: `average per ${shownInterval}` };
              const datasets = legendDefaults.labels.generateLabels(chartOf);
              return [...datasets.map((item) => ({ ...item, text: bucketTexts[item.text] || item.text })), ...legendExtras];
            },
          },
          // Entries of datasets hide and show them; the others only explain.
          onClick(event, item, legend) {
            if (item.datasetIndex !== undefined) legendDefaults.onClick.call(this, event, item, legend);
          },
        },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? formatTime(items[0].parsed.x) : ""),
            label: (item) => `${item.dataset.label}: ${formatValue(item.parsed.y, unit)}`,
          },
        },
      },
    },
  });

  function resolution() {
    const chosen = resolutionSelect.value === "auto" ? AUTO_RESOLUTION[range] : resolutionSelect.value;
    return config.api.aggregates ? chosen : "raw";
  }

  async function rawSeries(start, end) {
    let page = await api(config.api.readings, {
      params: { sensor_id: config.sensor.id, start, end, order: "newest", page_size: 10000 },
    });
    const readings = [...page.results];
    while (page.next && readings.length < MAX_RAW_POINTS) {
      page = await api(page.next);
      readings.push(...page.results);
    }
    const points = readings.reverse().map((reading) => ({ x: Date.parse(reading.ts), y: reading.value }));
    const counted = `${readings.length} reading${readings.length === 1 ? "" : "s"}`;
    const note = page.next ? `the newest ${counted}` : counted;
    return {
      note,
      points: points.length,
      datasets: [
        {
          label: "readings",
          data: points,
          borderColor: COLORS.line,
          backgroundColor: COLORS.line,
          borderWidth: 1.5,
          pointRadius: points.length > 300 ? 0 : 2,
        },
      ],
    };
  }

  async function bucketSeries(start, end, interval) {
    const params = { sensor: config.sensor.id, interval, start, end, functions: "min,max,avg,count", tz: timeZone };
    let answer;
    try {
      answer = await api(config.api.aggregates, { params });
    } catch (error) {
      // A browser time zone the server does not know: buckets in the server's own zone instead.
      if (!(error instanceof ApiError && error.body && error.body.errors && error.body.errors.tz)) throw error;
      answer = await api(config.api.aggregates, { params: { ...params, tz: "" } });
    }
    const buckets = answer.series.length ? answer.series[0].buckets : [];
    const points = (name) => buckets.map((bucket) => ({ x: Date.parse(bucket.bucket), y: bucket[name] }));
    const line = { borderWidth: 0, pointRadius: 0, backgroundColor: COLORS.band };
    return {
      note: `${buckets.length} buckets of one ${interval}`,
      points: buckets.length,
      datasets: [
        { label: "min", data: points("min"), ...line, fill: false },
        { label: "max", data: points("max"), ...line, fill: "-1" },
        {
          label: "average",
          data: points("avg"),
          borderColor: COLORS.line,
          backgroundColor: COLORS.line,
          borderWidth: 1.5,
          pointRadius: buckets.length > 200 ? 0 : 2,
        },
      ],
    };
  }

  // The anomaly model's expected band over the range, as two stepped datasets (low, then high filled down to
  // it), and the API's status: only a ready model has a band; a sensor without a rule, or still learning, has
  // none. A failure here leaves the rest of the chart as it is.
  async function expectedBand(start, end) {
    if (!config.api.anomaly_band) return { status: "unavailable", datasets: [] };
    let answer;
    try {
      answer = await api(config.api.anomaly_band, { params: { sensor: config.sensor.id, start, end } });
    } catch {
      return { status: "error", datasets: [] };
    }
    if (answer.status !== "ready" || !answer.points.length) return { status: answer.status, datasets: [] };
    const points = (name) => answer.points.map((point) => ({ x: Date.parse(point.ts), y: point[name] }));
    const edge = { borderColor: COLORS.expectedLine, borderWidth: 1, pointRadius: 0, stepped: true, order: 10 };
    return {
      status: answer.status,
      datasets: [
        { label: EXPECTED_LOW, data: points("low"), ...edge, backgroundColor: COLORS.expected, fill: false },
        { label: EXPECTED_LABEL, data: points("high"), ...edge, backgroundColor: COLORS.expected, fill: "-1" },
      ],
    };
  }

  // Alerts of this sensor that were unresolved at some moment of the range: open at its start, or opened in it.
  async function episodes(start, end) {
    if (!config.api.alerts) return [];
    const [atStart, opened] = await Promise.all([
      apiAll(config.api.alerts, { sensor_id: config.sensor.id, active_at: start }, 1000),
      apiAll(config.api.alerts, { sensor_id: config.sensor.id, opened_after: start, opened_before: end }, 1000),
    ]);
    const byId = new Map([...atStart, ...opened].map((alert) => [alert.id, alert]));
    return [...byId.values()].sort((a, b) => Date.parse(a.breach_started_at) - Date.parse(b.breach_started_at));
  }

  // Legend entries for the episodes shaded, by the colour they are shaded in: "1 critical alert episode".
  function episodeLegend(alerts) {
    const critical = alerts.filter((alert) => alert.max_severity === "critical").length;
    return [
      [critical, "critical", COLORS.episodeCritical],
      [alerts.length - critical, "warning", COLORS.episodeWarning],
    ]
      .filter(([count]) => count > 0)
      .map(([count, severity, color]) => ({
        text: `${count} ${severity} alert episode${count === 1 ? "" : "s"}`,
        fillStyle: color,
        strokeStyle: color,
        lineWidth: 0,
        hidden: false,
      }));
  }

  function showEpisodes(alerts, end) {
    chart.options.plugins.dashboardShading.spans = alerts.map((alert) => ({
      from: Date.parse(alert.breach_started_at || alert.opened_at),
      to: alert.resolved_at ? Date.parse(alert.resolved_at) : end,
      color: alert.max_severity === "critical" ? COLORS.episodeCritical : COLORS.episodeWarning,
    }));
    const rows = alerts.map((alert) =>
      el(
        "tr",
        {},
        el("td", {}, el("span", { class: `badge severity-${alert.severity}` }, alert.severity)),
        el("td", {}, el("a", { href: `${config.alerts_board_url}#alert-${alert.id}` }, alert.state)),
        el("td", {}, formatTime(alert.breach_started_at || alert.opened_at)),
        el("td", {}, alert.resolved_at ? formatTime(alert.resolved_at) : "ongoing"),
        el("td", {}, formatValue(alert.peak_value, unit)),
      ),
    );
    const none = config.api.alerts ? "No alerts in this range." : "Alerts are not available yet.";
    episodesBody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5 }, none))]));
  }

  function updateExportLinks(start, end, interval) {
    if (!exportLinks.csv) return;
    const aggregated = interval !== "raw" && config.api.export_aggregates;
    for (const [format, link] of Object.entries(exportLinks)) {
      const params = aggregated
        ? { sensor: config.sensor.id, start, end, interval, tz: timeZone, format }
        : { sensor: config.sensor.id, start, end, format };
      link.href = withParams(aggregated ? config.api.export_aggregates : config.api.export_readings, params);
    }
  }

  async function load(isCurrent) {
    const endMs = Date.now();
    const startMs = endMs - RANGES[range];
    const start = new Date(startMs).toISOString();
    const end = new Date(endMs).toISOString();
    const interval = resolution();
    canvas.dataset.state = "loading";
    state.dataset.state = "loading";
    state.textContent = "Loading…";
    try {
      const [series, alerts, band] = await Promise.all([
        interval === "raw" ? rawSeries(start, end) : bucketSeries(start, end, interval),
        episodes(start, end),
        expectedBand(start, end),
      ]);
      if (!isCurrent()) return;
      // The band's datasets come last, so the readings keep their places (fill "-1" is by position).
      chart.data.datasets = [...series.datasets, ...band.datasets];
      chart.options.scales.x = timeScale(startMs, endMs);
      // The value axis follows the readings, not the band (which may be much wider).
      const axis = valueAxis(series.datasets, bounds);
      Object.assign(chart.options.scales.y, axis);
      shownInterval = interval;
      const bandItems = thresholdLegend(config.thresholds, axis, (value) => formatValue(value, unit));
      legendExtras = [...bandItems, ...episodeLegend(alerts)];
      showEpisodes(alerts, endMs);
      chart.update();
      updateExportLinks(start, end, interval);
      canvas.dataset.resolution = interval;
      canvas.dataset.points = series.points;
      canvas.dataset.band = band.status;
      canvas.dataset.state = "ready";
      state.dataset.state = "ok";
      state.textContent = `${series.note}, updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (!isCurrent()) return;
      canvas.dataset.state = "error";
      state.dataset.state = "error";
      state.textContent = `Loading failed: ${errorText(error)}`;
    }
  }

  const polling = poller(load, REFRESH_S);

  function choose() {
    for (const button of rangeButtons) button.classList.toggle("selected", button.dataset.range === range);
    const params = new URLSearchParams({ range });
    if (resolutionSelect.value !== "auto") params.set("points", resolutionSelect.value);
    window.history.replaceState(null, "", `?${params}`);
    polling.now();
  }

  for (const button of rangeButtons) {
    button.addEventListener("click", () => {
      range = button.dataset.range;
      choose();
    });
  }
  resolutionSelect.addEventListener("change", choose);

  // Large exports answer 202 with a job: wait for its file, then download it.
  async function exportFile(event) {
    event.preventDefault();
    const link = event.currentTarget;
    state.textContent = "Preparing the export…";
    try {
      const response = await fetch(link.href, { credentials: "same-origin" });
      if (response.status === 202) {
        let job = await response.json();
        while (!job.download_url) {
          if (job.status === "failed" || job.status === "expired") throw new Error(`export ${job.status}: ${job.error}`);
          await new Promise((resolve) => setTimeout(resolve, 1000));
          job = await api(job.url);
        }
        window.location.assign(job.download_url);
      } else if (response.ok) {
        const disposition = response.headers.get("Content-Disposition") || "";
        const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || "export";
        const url = URL.createObjectURL(await response.blob());
        el("a", { href: url, download: name }).click();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } else {
        const body = await response.json().catch(() => null);
        throw new ApiError(response.status, body);
      }
      state.textContent = "Export downloaded.";
    } catch (error) {
      state.dataset.state = "error";
      state.textContent = `Export failed: ${errorText(error)}`;
    }
  }
  for (const link of Object.values(exportLinks)) if (link) link.addEventListener("click", exportFile);

  choose();
})();
