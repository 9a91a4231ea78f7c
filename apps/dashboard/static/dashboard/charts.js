"use strict";
// Chart.js pieces shared by the sensor and device pages: a time axis on a plain linear scale (epoch
// milliseconds, so no date adapter is needed) and a plugin that shades value bands (thresholds) and time spans
// (alert episodes, offline periods) behind the data.
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
      for (const band of options.bands || []) {
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

  // Warning and critical bands of a sensor's effective thresholds, and dashed lines at their bounds.
  function thresholdShading(thresholds) {
    const bands = [];
    const lines = [];
    for (const t of thresholds) {
      if (t.critical_high !== null) bands.push({ from: t.critical_high, to: null, color: COLORS.critical });
      if (t.warning_high !== null) bands.push({ from: t.warning_high, to: t.critical_high, color: COLORS.warning });
      if (t.warning_low !== null) bands.push({ from: t.critical_low, to: t.warning_low, color: COLORS.warning });
      if (t.critical_low !== null) bands.push({ from: null, to: t.critical_low, color: COLORS.critical });
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

  return { COLORS, thresholdShading, timeScale };
})();
