// The live page: log in, pick events, live charts, latest values, actuators and experiments.
// Plain DOM (textContent only: names come from users), no framework, no build step.

import { Api, ApiError } from "./api.js";
import { Board } from "./charts.js";
import { epochSeconds } from "./series.js";
import { LiveStream, streamUrl } from "./stream.js";

const $ = (id) => document.getElementById(id);
const CHARTED_KEY = "webmacs.charted"; // ids only: which events this browser charts
const EVENTS_PAGE = "/events?page=1&page_size=1000";
const EXPERIMENTS_PAGE = "/experiments?page=1&page_size=50"; // newest first: the running one is here
const SLIDER_DEBOUNCE_MS = 300;
const SLIDER_HOLD_MS = 1500; // live values do not move a slider the user has just touched
const REFRESH_MS = 10000;
const TILE_PAINT_MS = 200;

const api = new Api({ onUnauthorized: (detail) => endSession(`Session ended: ${detail} Log in again.`) });
const tiles = new Map(); // event id → {event, el, value, when, control, latest, shown}
let events = new Map();
let board = null;
let stream = null;
let refreshTimer = null;
let eventsReload = null;
let tilesDirty = false;
let tilesPaintedAt = -Infinity;

// ------------------------------------------------------------------ formatting

function formatValue(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
}

function formatTime(ts) {
  return ts ? new Date(ts).toLocaleString() : "";
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("aria-") || k === "role") node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

let noticeTimer = null;
function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

async function attempt(what, fn) {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) notice(`${what}: ${err.message}`);
    return undefined;
  }
}

// ------------------------------------------------------------------ session

function showLogin(message = "") {
  $("live-view").hidden = true;
  $("logout").hidden = true;
  $("connection").hidden = true;
  $("who").textContent = "";
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("login-form").elements.email.focus();
}

function endSession(message) {
  stream?.stop();
  stream = null;
  board?.clear();
  clearInterval(refreshTimer);
  tiles.clear();
  $("tiles").replaceChildren();
  $("experiments").replaceChildren();
  showLogin(message);
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const button = form.querySelector("button");
  button.disabled = true;
  $("login-error").textContent = "";
  try {
    await api.login(form.elements.email.value, form.elements.password.value);
    form.elements.password.value = "";
    await startSession();
  } catch (err) {
    $("login-error").textContent = err.message;
  } finally {
    button.disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  await api.logout();
  endSession("Logged out.");
});

// Viewers read and watch; set-points and experiments need the operator role (the server
// refuses them anyway: this only keeps the page from offering what would fail).
let canWrite = true;

function applyRole(role) {
  canWrite = role !== "viewer";
  for (const control of $("experiment-form").elements) control.disabled = !canWrite;
}

async function startSession() {
  const me = await api.send("GET", "/auth/me");
  $("who").textContent = me.role ? `${me.username} (${me.role})` : me.username;
  applyRole(me.role);
  $("login-view").hidden = true;
  $("live-view").hidden = false;
  $("logout").hidden = false;
  $("connection").hidden = false;
  board = board || new Board($("charts"), { onFrame: paintTiles });
  await loadEvents();
  await attempt("Latest values", async () => ingest(await api.send("GET", "/datapoints/latest"), "poll"));
  await loadExperiments();
  stream = new LiveStream({
    url: streamUrl(location),
    poll: () => api.send("GET", "/datapoints/latest"),
    onReadings: ingest,
    onState: showState,
    onRefused: (reason) => {
      api.forget();
      endSession(`Session ended: ${reason || "access withdrawn."} Log in again.`);
    },
  });
  stream.start();
  refreshTimer = setInterval(() => { loadExperiments(); }, REFRESH_MS);
}

function showState(state) {
  const badge = $("connection");
  badge.dataset.state = state;
  badge.textContent = state;
}

// ------------------------------------------------------------------ readings

// Stream batches and polled latest rows alike: record them, draw on the next frame.
function ingest(datapoints, source) {
  for (const d of datapoints) {
    const tile = tiles.get(d.event_public_id);
    if (!tile) {
      scheduleEventsReload(); // an event created elsewhere since we loaded the list
      continue;
    }
    if (source === "poll" && tile.latest && tile.latest.public_id === d.public_id) continue;
    const x = epochSeconds(d.timestamp);
    if (!tile.latest || x >= tile.latestX) {
      tile.latest = d;
      tile.latestX = x;
      tile.dirty = true;
      tilesDirty = true;
    }
    board.push(d.event_public_id, x, d.value);
  }
  board.request();
}

// Called on each animation frame by the board, but repaints at most every TILE_PAINT_MS:
// digits changing faster cannot be read, and repainting them costs the charts their frames.
// Only tiles whose value changed are touched.
function paintTiles() {
  if (!tilesDirty) return;
  const now = performance.now();
  if (now - tilesPaintedAt < TILE_PAINT_MS) {
    board.request(); // come back in a later frame
    return;
  }
  tilesPaintedAt = now;
  tilesDirty = false;
  for (const tile of tiles.values()) {
    if (!tile.dirty) continue;
    tile.dirty = false;
    const { value, timestamp } = tile.latest;
    tile.value.textContent = formatValue(value);
    tile.when.textContent = formatTime(timestamp);
    tile.when.dateTime = timestamp;
    const c = tile.control;
    if (!c || now - (tile.touchedAt || 0) < SLIDER_HOLD_MS) continue;
    if (c.type === "checkbox") c.checked = value === 1; // "on" is exactly 1 (contract §7.2)
    else if (c.type === "range") {
      c.value = String(value);
      tile.setpoint.textContent = formatValue(value);
    }
  }
}

// ------------------------------------------------------------------ events and tiles

function charted() {
  try {
    const ids = JSON.parse(localStorage.getItem(CHARTED_KEY) || "null");
    return Array.isArray(ids) ? new Set(ids) : null;
  } catch {
    return null;
  }
}

function saveCharted() {
  localStorage.setItem(CHARTED_KEY, JSON.stringify(board.ids()));
}

function scheduleEventsReload() {
  if (eventsReload) return;
  eventsReload = setTimeout(async () => { await loadEvents(); eventsReload = null; }, 2000);
}

async function loadEvents() {
  const page = await attempt("Events", () => api.send("GET", EVENTS_PAGE));
  if (!page) return;
  events = new Map(page.data.map((e) => [e.public_id, e]));
  const wanted = charted() ?? new Set(page.data.filter((e) => e.type === "sensor").slice(0, 4)
    .map((e) => e.public_id));
  for (const [id, tile] of tiles) {
    if (!events.has(id)) {
      tile.el.remove();
      tiles.delete(id);
      board.remove(id);
    }
  }
  for (const event of page.data) {
    const old = tiles.get(event.public_id);
    if (old && old.event.type === event.type && old.event.min_value === event.min_value
        && old.event.max_value === event.max_value) {
      describeTile(old, event);
      board.update(event);
      continue;
    }
    const tile = makeTile(event);
    if (old) {
      tile.latest = old.latest;
      tile.latestX = old.latestX;
      tile.dirty = Boolean(old.latest);
      tilesDirty ||= tile.dirty;
      old.el.replaceWith(tile.el);
    } else {
      $("tiles").append(tile.el);
    }
    tiles.set(event.public_id, tile);
    if (wanted.has(event.public_id) && !board.has(event.public_id)) chart(event, true);
  }
  $("charts-empty").hidden = board.ids().length > 0;
  board.request();
}

function describeTile(tile, event) {
  tile.event = event;
  tile.name.textContent = event.name;
  tile.unit.textContent = event.unit;
  tile.range.textContent = `range ${formatValue(event.min_value)} .. ${formatValue(event.max_value)} ${event.unit}`;
  tile.value.setAttribute("aria-label", `${event.name} latest value`);
  tile.pick.setAttribute("aria-label", `Chart ${event.name}`);
  if (tile.control) tile.control.setAttribute("aria-label", `${event.name} set-point`);
}

function makeTile(event) {
  const tile = { event, latest: null, latestX: -Infinity, dirty: false, control: null };
  tile.name = el("h3");
  tile.unit = el("span", { className: "unit" });
  tile.range = el("p", { className: "range" });
  tile.value = el("output", { className: "value" }, "–");
  tile.when = el("time", { className: "when" });
  tile.pick = el("input", { type: "checkbox", checked: board.has(event.public_id) });
  tile.pick.addEventListener("change", () => chart(event, tile.pick.checked));
  const head = el("header", {}, tile.name, el("label", { className: "pick" }, tile.pick, "chart"));
  tile.el = el("article", { className: `tile type-${event.type}`, dataset: { eventId: event.public_id } },
    head, el("p", { className: "reading" }, tile.value, " ", tile.unit), tile.range);
  const control = makeControl(tile, event);
  if (control) tile.el.append(control);
  tile.el.append(tile.when);
  describeTile(tile, event);
  return tile;
}

function post(event, value) {
  return attempt(`Setting ${event.name}`, () =>
    api.send("POST", "/datapoints", { event_public_id: event.public_id, value }));
}

function makeControl(tile, event) {
  const control = makeInput(tile, event);
  if (control && !canWrite) {
    for (const input of control.matches("input, button") ? [control] : control.querySelectorAll("input")) {
      input.disabled = true;
      input.title = "Viewers cannot change set-points.";
    }
  }
  return control;
}

function makeInput(tile, event) {
  if (event.type === "actuator") {
    const input = el("input", { type: "checkbox", role: "switch" });
    input.addEventListener("change", async () => {
      tile.touchedAt = performance.now();
      input.disabled = true;
      const ok = await post(event, input.checked ? 1 : 0);
      if (ok === undefined) input.checked = !input.checked;
      input.disabled = !canWrite;
    });
    tile.control = input;
    return el("label", { className: "switch" }, input, el("span", { className: "track" }), "on/off");
  }
  if (event.type === "range") {
    const span = event.max_value - event.min_value;
    const input = el("input", { type: "range", min: event.min_value, max: event.max_value,
                                step: span > 0 ? span / 100 : "any" });
    input.value = String(event.min_value); // until a value is known
    tile.setpoint = el("output", { className: "setpoint" }, "");
    let timer = null;
    let sent = null;
    const flush = () => {
      clearTimeout(timer);
      timer = null;
      const value = Number(input.value);
      if (value !== sent) {
        sent = value;
        post(event, value);
      }
    };
    input.addEventListener("input", () => {
      tile.touchedAt = performance.now();
      tile.setpoint.textContent = formatValue(Number(input.value));
      clearTimeout(timer);
      timer = setTimeout(flush, SLIDER_DEBOUNCE_MS);
    });
    input.addEventListener("change", flush); // released: send now
    tile.control = input;
    return el("div", { className: "slider" }, input, tile.setpoint);
  }
  if (event.type === "cmd_button") {
    const button = el("button", { type: "button", className: "command" }, `Send ${event.name}`);
    button.addEventListener("click", () => post(event, 1));
    return button;
  }
  return null;
}

async function chart(event, on) {
  const tile = tiles.get(event.public_id);
  if (tile) tile.pick.checked = on;
  if (!on) {
    board.remove(event.public_id);
  } else if (!board.has(event.public_id)) {
    board.add(event);
    if (tile?.latest) board.push(event.public_id, tile.latestX, tile.latest.value);
    backfill(event);
  }
  saveCharted();
  $("charts-empty").hidden = board.ids().length > 0;
}

// The last minutes of an event just charted, downsampled by the server.
async function backfill(event) {
  const body = await attempt(`History of ${event.name}`, () => api.send("POST", "/datapoints/series", {
    event_public_ids: [event.public_id], minutes: 10, max_points: 600,
  }));
  const points = body?.series?.[0]?.points ?? [];
  board.merge(event.public_id, points.map((p) => [epochSeconds(p.last_timestamp), p.last]));
}

// ------------------------------------------------------------------ experiments

async function loadExperiments() {
  const page = await attempt("Experiments", () => api.send("GET", EXPERIMENTS_PAGE));
  if (!page) return;
  $("experiments").replaceChildren(...page.data.map(experimentRow));
}

function experimentRow(x) {
  const running = x.stopped_on === null;
  const actions = el("div", { className: "actions" });
  if (running && canWrite) {
    const stop = el("button", { type: "button", "aria-label": `Stop ${x.name}` }, "Stop");
    stop.addEventListener("click", async () => {
      stop.disabled = true;
      await attempt(`Stopping ${x.name}`, () => api.send("PUT", `/experiments/${x.public_id}/stop`));
      await loadExperiments();
    });
    actions.append(stop);
  }
  const csv = el("button", { type: "button", "aria-label": `Download ${x.name} as CSV` }, "CSV");
  csv.addEventListener("click", () => attempt("Export failed", () =>
    api.download(`/experiments/${x.public_id}/export/csv`, `experiment_${x.public_id.slice(0, 8)}.csv`)));
  actions.append(csv);
  return el("tr", { className: running ? "running" : "", dataset: { experimentId: x.public_id } },
    el("td", {}, x.name), el("td", {}, formatTime(x.started_on)),
    el("td", {}, running ? el("strong", {}, "running") : formatTime(x.stopped_on)),
    el("td", {}, actions));
}

$("experiment-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const name = form.elements.name.value.trim();
  if (!name) return;
  const done = await attempt("Start", () => api.send("POST", "/experiments", { name }));
  if (done !== undefined) form.reset();
  await loadExperiments();
});

// ------------------------------------------------------------------ start

matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => board?.restyle());

// Read-only hooks for tests and bench/live_page.py; nothing here changes the page.
window.webmacsDebug = Object.freeze({
  state: () => stream?.state ?? "offline",
  chartPoints: (id) => board?.pointsOf(id) ?? null,
  latest: (id) => tiles.get(id)?.latest ?? null,
  draws: () => board?.draws ?? 0,
  pacing: () => board?.pacer.gapMs ?? 0, // ms between chart draws when the machine is slow; 0: every frame
  dropped: () => stream?.dropped ?? 0,
});

if (api.token) {
  startSession().catch((err) => { if (!(err instanceof ApiError && err.status === 401)) showLogin(err.message); });
} else {
  showLogin();
}
