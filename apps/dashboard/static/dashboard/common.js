"use strict";
// Helpers shared by the dashboard pages: the page's config, REST API calls with the session login (and its
// CSRF token for writes), and formatting.
window.Dashboard = (function () {
  const main = document.getElementById("content-main");
  const configElement = document.getElementById("dashboard-config");
  const config = configElement ? JSON.parse(configElement.textContent) : {};

  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && typeof body === "object" && body.detail ? body.detail : `HTTP ${status}`;
      super(detail);
      this.status = status;
      this.body = body;
    }
  }

  function withParams(url, params) {
    const target = new URL(url, window.location.origin);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") target.searchParams.set(name, value);
    }
    return target;
  }

  async function api(url, { method = "GET", params, body } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = main.dataset.csrfToken;
    }
    const response = await fetch(withParams(url, params), {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (error) {
      data = { detail: `HTTP ${response.status}: the answer is not JSON` };
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // Every row of a page-number paginated list, following `next`, up to `limit` rows.
  async function apiAll(url, params, limit = 10000) {
    let page = await api(url, { params: { page_size: 1000, ...params } });
    const rows = [...page.results];
    while (page.next && rows.length < limit) {
      page = await api(page.next);
      rows.push(...page.results);
    }
    return rows;
  }

  // Short, rounded ages: "8 s", "12 min", "3 h", "2 d".
  function age(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h`;
    return `${Math.floor(s / 86400)} d`;
  }

  const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
  function formatValue(value, unit) {
    if (value === null || value === undefined) return "–";
    return unit ? `${numberFormat.format(value)} ${unit}` : numberFormat.format(value);
  }

  function formatTime(iso) {
    return iso ? new Date(iso).toLocaleString() : "–";
  }

  // el("a", {href: "/x", class: "y"}, "text", otherNode): a small DOM builder; null children are skipped.
  function el(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(element.dataset, value);
      else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : String(child));
    }
    return element;
  }

  // The dashboard URL of a sensor or device, from the pattern the server gives ("/ops/sensors/0/").
  function pageUrl(pattern, id) {
    return pattern.replace(/\/0\/$/, `/${id}/`);
  }

  function errorText(error) {
    if (!(error instanceof ApiError)) return String(error.message || error);
    const fields = error.body && error.body.errors ? Object.entries(error.body.errors) : [];
    const details = fields.map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`);
    return [error.message, ...details].join(" ");
  }

  // Calls `load` now and then every `seconds`, never two at once; `now()` runs it at once (after a filter
  // change) and a result of an older run is dropped by the caller through the generation it is given.
  function poller(load, seconds) {
    let timer = null;
    let generation = 0;
    async function run() {
      clearTimeout(timer);
      const mine = ++generation;
      try {
        await load(() => mine === generation);
      } finally {
        if (mine === generation) timer = setTimeout(run, seconds * 1000);
      }
    }
    return { now: run };
  }

  return { config, api, apiAll, ApiError, age, formatValue, formatTime, el, pageUrl, errorText, poller, withParams };
})();
