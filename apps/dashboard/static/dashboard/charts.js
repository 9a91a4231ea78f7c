"use strict";
// Chart.js pieces shared by the sensor and device pages: a time axis on a plain linear scale (epoch
// milliseconds, so no date adapter is needed), a value axis that follows the data, a plugin that shades value
// bands (thresholds) and time spans (alert episodes, offline periods) behind the data, and legend entries
// for the threshold bands.
window.DashboardCharts = (function () {
  if (!window.Chart) {
    // The library is installed by `npm ci` (make run and make test); say so where the charts would be.
    for (const canvas of document.querySelectorAll("canvas")) {
      const note = document.createElement("p");
      note.className = "errornote";
      note.textContent = "The chart library is not installed on this server: run `npm ci` (make run does).";
      canvas.replaceWith(note);
    }
    return null;
  }
  const COLORS = {
    line: "#417690",
    band: "rgba(65, 118, 144, 0.18)",
    warning: "rgba(255, 179, 0, 0.16)",
    warningLine: "rgba(204, 140, 0, 0.9)",
    critical: "rgba(211, 47, 47, 0.14)",
    criticalLine: "rgba(183, 28, 28, 0.9)",
    episodeWarning: "rgba(255, 179, 0, 0.22)",
    episodeCritical: "rgba(211, 47, 47, 0.2)",
    offline: "rgba(120, 120, 120, 0.28)",
    // The anomaly model's expected band: a hue of its own, apart from the readings' blue and the thresholds'.
    expected: "rgba(123, 31, 162, 0.13)",
    expectedLine: "rgba(123, 31, 162, 0.55)",
    // Legend boxes are small: the same hues, stronger.
    warningSwatch: "rgba(255, 179, 0, 0.4)",
    criticalSwatch: "rgba(211, 47, 47, 0.35)",
  };

  const shading = {
    id: "dashboardShading",
    beforeDatasetsDraw(chart, args, options) {
      const { ctx, chartArea: area, scales } = chart;
      const x = scales.x;
      const y = scales.y;
      ctx.save();
      ctx.beginPath();
      ctx.rect(area.left, area.top, area.width, area.height);
      ctx.clip();
      // Only what falls in the value axis's range is drawn, and only the part of it inside the chart.
      for (const band of options.bands || []) {
        if (!inView(band, y)) continue;
        const top = band.to === null ? area.top : y.getPixelForValue(band.to);
        const bottom = band.from === null ? area.bottom : y.getPixelForValue(band.from);
        ctx.fillStyle = band.color;
        ctx.fillRect(area.left, Math.min(top, bottom), area.width, Math.abs(bottom - top));
      }
      for (const span of options.spans || []) {
        const left = x.getPixelForValue(span.from);
        const right = x.getPixelForValue(span.to);
        ctx.fillStyle = span.color;
        ctx.fillRect(left, area.top, Math.max(right - left, 2), area.height);
      }
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1;
      for (const line of options.lines || []) {
        if (line.value < y.min || line.value > y.max) continue;
        const pixel = y.getPixelForValue(line.value);
        ctx.strokeStyle = line.color;
        ctx.beginPath();
        ctx.moveTo(area.left, pixel);
        ctx.lineTo(area.right, pixel);
        ctx.stroke();
      }
      ctx.restore();
    },
  };
  window.Chart.register(shading);

  // Whether a band (from/to, null for open-ended) overlaps the range of a value axis (its min and max).
  function inView(band, axis) {
    return (band.from === null || band.from < axis.max) && (band.to === null || band.to > axis.min);
  }

  // The bands of one threshold, low side first: where each severity begins below and above the normal range.
  function thresholdBands(t) {
    const band = (severity, side, limit, from, to) => limit !== null && { severity, side, limit, from, to };
    return [
      band("critical", "low", t.critical_low, null, t.critical_low),
      band("warning", "low", t.warning_low, t.critical_low, t.warning_low),
      band("warning", "high", t.warning_high, t.warning_high, t.critical_high),
      band("critical", "high", t.critical_high, t.critical_high, null),
    ].filter(Boolean);
  }

  // Warning and critical bands of a sensor's effective thresholds, and dashed lines at their bounds.
  function thresholdShading(thresholds) {
    const bands = [];
    const lines = [];
    for (const t of thresholds) {
      for (const band of thresholdBands(t)) bands.push({ ...band, color: COLORS[band.severity] });
      for (const [name, color] of [
        ["critical_high", COLORS.criticalLine],
        ["warning_high", COLORS.warningLine],
        ["warning_low", COLORS.warningLine],
        ["critical_low", COLORS.criticalLine],
      ]) {
        if (t[name] !== null) lines.push({ value: t[name], color });
      }
    }
    return { bands, lines };
  }

  function timeLabel(milliseconds, span) {
    const moment = new Date(milliseconds);
    if (span <= 36 * 3600e3) return moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (span <= 8 * 86400e3) return moment.toLocaleDateString([], { weekday: "short", month: "short", day: "numeric" });
    return moment.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  // Ticks at round local times (every 10 minutes, 3 hours, day...), at most about eight of them.
  const STEPS_MS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map((minutes) => minutes * 60e3);
  function roundTicks(start, end) {
    const step = STEPS_MS.find((candidate) => (end - start) / candidate <= 8) || STEPS_MS[STEPS_MS.length - 1];
    const offset = new Date(start).getTimezoneOffset() * 60e3;
    const ticks = [];
    for (let tick = Math.ceil((start - offset) / step) * step + offset; tick <= end; tick += step) ticks.push({ value: tick });
    return ticks;
  }

  function timeScale(start, end) {
    return {
      type: "linear",
      min: start,
      max: end,
      afterBuildTicks: (axis) => {
        axis.ticks = roundTicks(start, end);
      },
      ticks: { autoSkip: false, maxRotation: 0, callback: (value) => timeLabel(value, end - start) },
    };
  }

  // Legend entries for the bands, one per severity of each threshold, with every limit, and where a band lies
  // outside the value axis (so it is not drawn) the side of the chart it is on:
  // "warning band: < 700 V (below the chart), > 800 V".
  function thresholdLegend(thresholds, axis, format) {
    const items = [];
    for (const t of thresholds) {
      for (const severity of ["warning", "critical"]) {
        const parts = thresholdBands(t)
          .filter((band) => band.severity === severity)
          .map((band) => {
            const low = band.side === "low";
            const where = inView(band, axis) ? "" : low ? " (below the chart)" : " (above the chart)";
            return `${low ? "<" : ">"} ${format(band.limit)}${where}`;
          });
        if (!parts.length) continue;
        items.push({
          text: `${severity} band: ${parts.join(", ")}`,
          fillStyle: COLORS[`${severity}Swatch`],
          strokeStyle: COLORS[`${severity}Line`],
          lineWidth: 1,
          lineDash: [3, 2],
          hidden: false,
        });
      }
    }
    return items;
  }

  // The value axis for datasets of {x, y} points: their lowest and highest values with a little room (5% of
  // their spread), widened to a round step, so a signal fills the chart instead of lying flat between distant
  // threshold bands. Without data, `fallback` values (the thresholds' bounds) give the range.
  const NICE = [1, 2, 2.5, 5, 10];
  function valueAxis(datasets, fallback) {
    let low = Infinity;
    let high = -Infinity;
    for (const dataset of datasets) {
      for (const point of dataset.data) {
        if (Number.isFinite(point.y)) {
          low = Math.min(low, point.y);
          high = Math.max(high, point.y);
        }
      }
    }
    if (low > high) {
      if (!fallback.length) return { min: undefined, max: undefined };
      low = Math.min(...fallback);
      high = Math.max(...fallback);
    }
    const spread = high - low || Math.abs(high) * 0.02 || 1;
    const padding = spread * 0.05;
    const rough = (spread + 2 * padding) / 8;
    const magnitude = 10 ** Math.floor(Math.log10(rough));
    const step = NICE.map((factor) => factor * magnitude).find((candidate) => candidate >= rough);
    const round = (value) => Number(value.toPrecision(12)); // 0.1 * 3 is 0.30000000000000004
    return {
      min: round(Math.floor((low - padding) / step) * step),
      max: round(Math.ceil((high + padding) / step) * step),
    };
  }

  return { COLORS, thresholdShading, thresholdLegend, timeScale, valueAxis };
})();
