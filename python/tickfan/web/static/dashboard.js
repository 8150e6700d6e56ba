// The tickfan dashboard (docs/dashboard.md): live prices, bots, notifications, performance.
// Everything it learns from the server comes through tickfan.js; this file keeps state and renders.
import { Channel, MarketData, Notifications, Series, PATHS } from "./tickfan.js";

const $ = (id) => document.getElementById(id);
const el = (tag, props) => Object.assign(document.createElement(tag), props); // text stays text
const KEY = "tickfan.token";
const MAX_POINTS = 300;

// The token arrives in the address's fragment (never sent to any server), leaves the address bar
// at once and is kept for this tab only, so Refresh and a reload keep working.
function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return false;
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}
// window.tickfanGetToken (async), when a host page or a test defines it, hands out fresh tokens.
const getToken = async (why) => (window.tickfanGetToken ? window.tickfanGetToken(why) : sessionStorage.getItem(KEY));

const symbols = new Map(); // symbol -> {symbol, price_decimals, size_decimals}
const series = new Map(); // symbol -> Series
const rows = new Map(); // symbol -> the table row's cells
const bots = new Map(); // bot_id -> its latest bot_status
const dirty = { chart: true, table: new Set(), bots: false, notes: false, perf: true };
const stats = { draws: 0 };
let chosen = null, running = 0, serverMetrics = null, hiddenMark = null, primed = false, booted = false;

const market = new MarketData({ getToken, pingMs: 5000 });
const notes = new Notifications({ getToken });
const botCh = new Channel(PATHS.bots, { getToken });
const metricsCh = new Channel(PATHS.metrics, { getToken });
const channels = [market.ch, notes.ch, botCh, metricsCh];
const NAMES = new Map([[market.ch, "prices"], [notes.ch, "notifications"], [botCh, "bots"], [metricsCh, "metrics"]]);

const seriesOf = (s) => series.get(s) ?? series.set(s, new Series(MAX_POINTS)).get(s);
const fmt = (s, v, key = "price_decimals") => (symbols.has(s) ? v.toFixed(symbols.get(s)[key]) : String(v));
const utc = (ms) => new Date(ms).toISOString().slice(11, 23);

async function loadSymbols() {
  try {
    const r = await fetch("/api/symbols", { headers: { Authorization: `Bearer ${await getToken({ reason: "http" })}` } });
    if (r.status === 401) return tokenProblem("The server refused the token: it has expired or is not valid here.");
    if (!r.ok) throw new Error(`GET /api/symbols: ${r.status}`);
    for (const s of (await r.json()).symbols) symbols.set(s.symbol, s);
  } catch (e) {
    setTimeout(loadSymbols, 2000);
    return;
  }
  const body = $("prices").tBodies[0];
  for (const s of symbols.keys()) {
    $("symbol").add(new Option(s, s));
    const tr = body.insertRow(), cells = [0, 1, 2, 3].map(() => tr.insertCell());
    cells[0].textContent = s; cells[1].textContent = "–";
    tr.addEventListener("click", () => choose(s));
    rows.set(s, { tr, price: cells[1], size: cells[2], time: cells[3], prev: null });
  }
  choose(symbols.has("BTC/USD") ? "BTC/USD" : symbols.keys().next().value);
  market.subscribe([...symbols.keys()]);
}

function choose(symbol) {
  chosen = symbol;
  $("symbol").value = symbol;
  for (const [s, row] of rows) row.tr.classList.toggle("chosen", s === symbol);
  dirty.chart = true;
  dirty.table.add(symbol);
}

market.addEventListener("tick", (e) => {
  const t = e.detail;
  seriesOf(t.symbol).add(t.ts, t.price);
  dirty.table.add(t.symbol);
  if (t.symbol === chosen) dirty.chart = true;
});
market.addEventListener("backfill", (e) => {
  seriesOf(e.detail.symbol).merge(e.detail.candles);
  if (e.detail.symbol === chosen) dirty.chart = true;
});
market.addEventListener("subscribed", (e) => {
  // The first time: the last MAX_POINTS seconds of history, so the chart does not start empty.
  if (!primed && e.detail.symbols.length) market.backfill(e.detail.symbols, Date.now() - MAX_POINTS * 1000);
  primed ||= e.detail.symbols.length > 0;
});
market.ch.addEventListener("rtt", () => { dirty.perf = true; });
market.ch.addEventListener("open", () => { $("user").textContent = `user ${market.ch.user}`; $("no-token").hidden = true; });
market.ch.addEventListener("expiring", (e) => {
  $("expiry").textContent = `token expires at ${utc(e.detail.expiresAt * 1000).slice(0, 8)} UTC: open a new #token= address to go on`;
});
botCh.addEventListener("message", (e) => {
  if (e.detail.type !== "bot_status") return;
  bots.set(e.detail.bot_id, e.detail);
  running = e.detail.running_count;
  dirty.bots = true;
});
notes.addEventListener("change", () => { dirty.notes = true; });
metricsCh.addEventListener("message", (e) => {
  if (e.detail.type === "metrics") { serverMetrics = e.detail; dirty.perf = true; }
});

// A hidden tab needs no tick-by-tick stream: conflate; when visible again, auto plus a backfill
// from where the tab was hidden, so the buckets it only sampled are filled in.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    hiddenMark = market.lastTs();
    market.setMode("conflate", 1000);
    return;
  }
  market.setMode("auto");
  if (hiddenMark) market.backfillAll(hiddenMark);
  hiddenMark = null;
  dirty.chart = true;
});

function showState() {
  const offline = !navigator.onLine || channels.some((c) => c.state === "offline");
  const down = channels.filter((c) => c.state === "reconnecting").map((c) => NAMES.get(c));
  $("conn").textContent = market.ch.state;
  $("conn").className = `pill ${market.ch.state}`;
  $("banner").hidden = !offline && !down.length;
  $("banner-text").textContent = offline
    ? "You are offline. Showing the last known data."
    : `Connection lost (${down.join(", ")}), reconnecting… Showing the last known data.`;
  if (channels.some((c) => c.state === "unauthorized")) tokenProblem("The server refused the token: it has expired or is not valid here.");
}
for (const c of channels) c.addEventListener("state", showState);
window.addEventListener("online", showState);
window.addEventListener("offline", showState);
$("refresh").addEventListener("click", () => channels.forEach((c) => c.reconnectNow()));
$("symbol").addEventListener("change", (e) => choose(e.target.value));
$("mark-all").addEventListener("click", () => {
  const ids = [...notes.items.values()].filter((n) => !n.read).map((n) => n.id);
  if (ids.length) notes.markRead(ids.slice(-1000));
});

function tokenProblem(text) { $("no-token").hidden = false; $("token-problem").textContent = text; }

// Rendering: one rAF loop counts frames (FPS) and redraws only what changed since the last frame.
let frames = 0, fpsFrom = performance.now(), fps = 0;
function frame(now) {
  frames++;
  if (now - fpsFrom >= 1000) { fps = (frames * 1000) / (now - fpsFrom); frames = 0; fpsFrom = now; dirty.perf = true; }
  if (dirty.chart) drawChart();
  if (dirty.table.size) drawTable();
  if (dirty.bots) drawBots();
  if (dirty.notes) drawNotes();
  if (dirty.perf) drawPerf();
  requestAnimationFrame(frame);
}

function drawChart() {
  dirty.chart = false;
  stats.draws++;
  const c = $("chart"), dpr = window.devicePixelRatio || 1, w = c.clientWidth, h = c.clientHeight;
  c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); // also clears it
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.font = '11px "DejaVu Sans", sans-serif';
  g.fillStyle = "#8b98a8";
  const pts = chosen ? seriesOf(chosen).points() : [];
  $("points").textContent = `${pts.length} / ${MAX_POINTS} one-second points`;
  if (!pts.length) return g.fillText(chosen ? `waiting for ${chosen} ticks…` : "loading symbols…", 12, h / 2);
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of pts) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 1e-4 || 1;
  lo -= pad; hi += pad;
  const left = 8, right = 96, top = 8, bottom = 18;
  const t1 = pts[pts.length - 1][0], t0 = Math.min(pts[0][0], t1 - (MAX_POINTS - 1) * 1000);
  const x = (t) => left + ((t - t0) / (t1 - t0 || 1)) * (w - left - right);
  const y = (v) => top + ((hi - v) / (hi - lo)) * (h - top - bottom);
  g.strokeStyle = "#263140"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4, yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(left, yy); g.lineTo(w - right, yy); g.stroke();
    g.fillText(fmt(chosen, v), w - right + 6, yy + 4);
  }
  g.fillText(utc(t0).slice(0, 8), left, h - 4);
  g.fillText(utc(t1).slice(0, 8), w - right - 48, h - 4);
  g.strokeStyle = g.fillStyle = "#2f81f7"; g.lineWidth = 1.5;
  g.beginPath();
  pts.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
  g.stroke();
  const [lt, lv] = pts[pts.length - 1];
  g.beginPath(); g.arc(x(lt), y(lv), 3.5, 0, 2 * Math.PI); g.fill();
}

function drawTable() {
  for (const s of dirty.table) {
    const t = market.last.get(s), row = rows.get(s);
    if (!t || !row) continue;
    row.price.textContent = fmt(s, t.price);
    row.size.textContent = fmt(s, t.size, "size_decimals");
    row.time.textContent = utc(t.ts);
    row.price.className = row.prev === null || t.price === row.prev ? "" : t.price > row.prev ? "up" : "down";
    row.prev = t.price;
  }
  dirty.table.clear();
  const t = market.last.get(chosen);
  $("last").textContent = t ? `${chosen} ${fmt(chosen, t.price)}` : "";
}

/** A list item whose every text is set as text, never parsed as HTML. */
function item(title, detail, cls) {
  const li = el("li", { className: cls, textContent: title });
  li.append(el("small", { textContent: detail }));
  return li;
}

function drawBots() {
  dirty.bots = false;
  $("running").textContent = `${running} running`;
  const list = [...bots.values()].sort((a, b) => a.bot_id.localeCompare(b.bot_id));
  $("bots").replaceChildren(...list.map((b) => item(b.bot_id, `${b.status} · ${utc(b.ts)}`, `status-${b.status}`)));
}

function drawNotes() {
  dirty.notes = false;
  $("unread").textContent = `${notes.unread} unread`;
  $("unread").classList.toggle("hot", notes.unread > 0);
  const list = [...notes.items.values()].sort((a, b) => b.id - a.id).slice(0, 50);
  $("notes").replaceChildren(...list.map((n) => {
    const li = item(n.title, `${n.kind} · ${utc(n.created_at)}${n.body ? ` · ${n.body}` : ""}`, n.read ? "" : "unread");
    li.dataset.id = n.id;
    if (!n.read) li.addEventListener("click", () => notes.markRead([n.id]));
    return li;
  }));
}

function drawPerf() {
  dirty.perf = false;
  const m = serverMetrics, mem = performance.memory, mb = (b) => `${(b / 1048576).toFixed(1)} MB`;
  const ms = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(2)} ms`);
  const out = [
    ["page FPS", fps.toFixed(0)],
    ["page JS heap", mem ? mb(mem.usedJSHeapSize) : "not given by this browser"],
    ["round trip (ping/pong)", market.ch.rtt === null ? "–" : ms(market.ch.rtt)],
  ];
  if (!m) out.push(["server metrics", metricsCh.state]);
  else out.push(
    ["server core", m.core], ["server uptime", `${m.uptime_s.toFixed(0)} s`],
    ["open sockets", Object.values(m.connections).reduce((a, b) => a + b, 0)],
    ["ticks in", `${m.ticks_in_per_s.toFixed(0)}/s`], ["messages out", `${m.messages_out_per_s.toFixed(0)}/s`],
    ["bytes out", `${(m.bytes_out_per_s / 1024).toFixed(1)} KiB/s`],
    ["fan-out p50 / p99", `${ms(m.fanout_latency_ms.p50)} / ${ms(m.fanout_latency_ms.p99)}`],
    ["dropped / slow closed", `${m.dropped_messages} / ${m.slow_consumers_disconnected}`],
    ["server RSS", mb(m.rss_bytes)], ["server CPU", `${m.cpu_percent.toFixed(0)} %`],
    ["event-loop lag", ms(m.event_loop_lag_ms)],
  );
  $("perf").replaceChildren(...out.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: String(v) })]));
}

function boot() {
  if (booted) return;
  booted = true; $("main").hidden = false;
  for (const c of channels) c.start();
  loadSymbols(); requestAnimationFrame(frame);
}

window.addEventListener("hashchange", () => {
  if (!takeToken()) return;
  $("expiry").textContent = "";
  if (!booted) return boot();
  for (const c of channels) (c.state === "open" ? c.refresh() : c.reconnectNow());
});
for (const el of document.querySelectorAll(".origin")) el.textContent = location.origin;
// Test and embedding hooks: the page's state, read-only by convention.
window.tickfanDemo = {
  market, notes, bots: botCh, metrics: metricsCh, channels, stats, choose,
  get chosen() { return chosen; },
  series: (s = chosen) => seriesOf(s).points().map((p) => [...p]),
};
takeToken();
if (window.tickfanGetToken || sessionStorage.getItem(KEY)) boot();
else tokenProblem("No token was given.");
