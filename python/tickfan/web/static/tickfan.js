// tickfan.js: the browser client of a tickfan server, one ES module (docs/dashboard.md).
//   Channel        one WebSocket endpoint: auth first, in-band token refresh, jittered backoff, close codes
//   MarketData     /ws/market-data: subscriptions replayed after every auth, batches decoded, seq gaps, backfill
//   Notifications  /ws/notifications, polling GET /api/notifications while the socket is down
//   Series         a rolling series of 1-s buckets keyed by open time (ticks and candles upserted)
// Served by every tickfan server at /static/tickfan.js.

export const PATHS = { market: "/ws/market-data", bots: "/ws/bot-status",
  notifications: "/ws/notifications", metrics: "/ws/performance-metrics" };

/** The `market_data` ticks a `market_data_batch` stands for. Exact: `units / 10**decimals` is the
 *  double nearest the decimal, as JSON.parse gives it in tick mode (`units * 10**-d` is not). */
export function decodeBatch(m) {
  const n = m.count;
  if (!(n >= 1 && m.ts.length === n && m.price.length === n && m.size.length === n)) {
    throw new Error(`malformed market_data_batch for ${m.symbol}`);
  }
  const pScale = 10 ** m.price_decimals, sScale = 10 ** m.size_decimals, out = new Array(n);
  let ts = 0, units = 0;
  for (let i = 0; i < n; i++) {
    ts += m.ts[i];
    units += m.price[i];
    out[i] = { type: "market_data", symbol: m.symbol, seq: m.seq + i, ts, price: units / pScale, size: m.size[i] / sScale };
  }
  return out;
}

/** One endpoint. `getToken({reason})` (async) is asked before every connect and at 80% of a
 *  token's lifetime. Events: state {state, retryAt}, open {reconnect}, message (any frame but
 *  auth_success/pong), close {code, error}, rtt, slow (after 1013), expiring (no fresh token). */
export class Channel extends EventTarget {
  constructor(path, { getToken, base = location.origin, minDelayMs = 500, maxDelayMs = 20000, pingMs = 15000,
    staleMs = 45000, authTimeoutMs = 10000, followNetwork = true } = {}) {
    super();
    this.url = base.replace(/^http/, "ws") + path;
    Object.assign(this, { getToken, minDelayMs, maxDelayMs, pingMs, staleMs, authTimeoutMs });
    Object.assign(this, { state: "idle", ws: null, authed: false, opened: false, attempt: 0, refused: 0, timers: {} });
    this.rtt = null; this.user = null; this.expiresAt = null; this.paused = false; this.stopped = true;
    if (followNetwork && typeof window !== "undefined") {
      // The browser going offline does not close a WebSocket (it just goes silent): close it here.
      window.addEventListener("offline", () => this.pause());
      window.addEventListener("online", () => this.resume());
    }
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
  setState(state, extra = {}) {
    if (this.state !== state || extra.retryAt) { this.state = state; this.emit("state", { state, ...extra }); }
  }
  timer(name, ms, fn) { clearTimeout(this.timers[name]); this.timers[name] = setTimeout(fn, ms); }
  clear(...names) { for (const n of names) { clearTimeout(this.timers[n]); clearInterval(this.timers[n]); } }

  start() {
    this.stopped = false;
    if (typeof navigator !== "undefined" && navigator.onLine === false) return this.pause();
    this.connect();
  }
  stop() { this.stopped = true; this.drop(1000); this.setState("stopped"); }
  /** Offline: close the socket and wait for resume(). */
  pause() { if (this.stopped) return; this.paused = true; this.clear("retry"); this.drop(4001); this.setState("offline"); }
  resume() { if (!this.paused) return; this.paused = false; this.attempt = 0; this.connect(); }
  /** Connect now (the page's Refresh button, or a new token after a refusal). */
  reconnectNow() {
    this.stopped = false; this.paused = false; this.attempt = 0; this.refused = 0;
    if (!this.ws && !this.connecting) this.connect();
  }
  /** True when sent (the socket is open and authenticated). */
  send(message) {
    if (this.ws && this.authed) this.ws.send(JSON.stringify(message));
    return Boolean(this.ws && this.authed);
  }
  /** The provider's token, or null when it fails. `reason`: connect, expired, refused, refresh or http. */
  fetchToken(reason) { return Promise.resolve().then(() => this.getToken({ reason })).catch(() => null); }

  async connect() {
    this.clear("retry");
    if (this.stopped || this.paused || this.ws || this.connecting) return;
    this.connecting = true;
    const token = await this.fetchToken(this.why ?? "connect");
    this.connecting = false; this.why = null;
    if (this.stopped || this.paused || this.ws) return;
    if (!token) return this.retry();
    const ws = new WebSocket(this.url);
    this.ws = ws; this.token = token; this.lastError = null;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token }));
      this.timer("auth", this.authTimeoutMs, () => this.drop(4000));
    };
    ws.onmessage = (e) => this.onFrame(ws, e.data);
    ws.onclose = (e) => this.onClose(ws, e.code);
  }

  /** Close the current socket without waiting for its close handshake, then react as to a close. */
  drop(code) {
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try { ws.close(code); } catch (e) { /* already closing */ }
    this.onClose(ws, code);
  }

  onFrame(ws, data) {
    if (ws !== this.ws) return;
    this.lastFrame = Date.now();
    let m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (m.type === "auth_success") return this.onAuth(m);
    if (m.type === "pong") { this.rtt = performance.now() - m.ts; return this.emit("rtt", this.rtt); }
    if (m.type === "error") this.lastError = m.code;
    this.emit("message", m);
  }

  onAuth(m) {
    this.clear("auth");
    this.user = m.user_id; this.expiresAt = m.expires_at;
    this.timer("refresh", Math.max(1000, 0.8 * (m.expires_at * 1000 - Date.now())), () => this.refresh());
    if (this.authed) return; // an in-band refresh: the subscriptions are still in place
    this.authed = true; this.attempt = 0; this.refused = 0;
    const reconnect = this.opened;
    this.opened = true;
    this.setState("open");
    this.emit("open", { reconnect }); // listeners resubscribe: auth, then subscribe, on every socket
    this.clear("ping");
    this.timers.ping = setInterval(() => this.ping(), this.pingMs);
    this.ping();
  }

  /** Ask for a fresh token and send it in-band; without one, say so ("expiring"). */
  async refresh() {
    const ws = this.ws, token = await this.fetchToken("refresh");
    if (ws !== this.ws || !this.authed) return;
    if (!token || token === this.token) return this.emit("expiring", { expiresAt: this.expiresAt });
    this.token = token;
    this.send({ type: "auth", token });
  }

  ping() {
    if (Date.now() - this.lastFrame > this.staleMs) return this.drop(4002); // a silent link is a dead link
    this.send({ type: "ping", ts: performance.now() });
  }

  onClose(ws, code) {
    if (ws !== this.ws) return;
    const error = this.lastError, wasOpen = this.authed;
    this.ws = null; this.authed = false;
    this.clear("auth", "refresh", "ping");
    this.emit("close", { code, error });
    if (this.stopped || this.paused) return;
    if (code === 1008 && error !== "rate_limited") { // a flooder's 1008 backs off below
      this.why = error === "token_expired" ? "expired" : "refused"; // getToken() is asked for a new one
      if (this.why === "refused" && ++this.refused >= 2) return this.setState("unauthorized"); // twice: stop
      return this.retry(0);
    }
    if (code === 1001 && wasOpen) return this.retry(0); // the server went away: try again at once (once)
    if (code === 1013) this.emit("slow"); // too slow for the stream: back off, then conflate
    this.retry();
  }

  /** Full jitter: a delay drawn in [min, min * 2^attempt], capped at maxDelayMs. */
  retry(delay) {
    if (delay === undefined) {
      const cap = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this.attempt++);
      delay = Math.max(this.minDelayMs, Math.random() * cap);
    }
    this.setState("reconnecting", { retryAt: Date.now() + delay });
    this.timer("retry", delay, () => this.connect());
  }
}

/** /ws/market-data. Events: tick (a market_data, batches expanded), gap {symbol, from, to, reason?},
 *  seqreset {epoch}, backfill (the server's message), subscribed, message (anything else). */
export class MarketData extends EventTarget {
  constructor(opts = {}) {
    super();
    this.ch = new Channel(PATHS.market, opts);
    this.wanted = new Set(); this.mode = { mode: "auto" }; this.serverMode = null;
    this.last = new Map(); this.epoch = null; this.slowUntil = 0; this.interval = opts.interval ?? "1s";
    this.ch.addEventListener("open", (e) => this.onOpen(e.detail.reconnect));
    this.ch.addEventListener("message", (e) => this.onMessage(e.detail));
    this.ch.addEventListener("slow", () => { this.slowUntil = Date.now() + 60000; setTimeout(() => this.resubscribe(), 60050); });
  }
  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
  start() { this.ch.start(); }
  /** The mode asked of the server: conflate for a minute after a 1013, else the chosen one. */
  get effective() { return Date.now() < this.slowUntil ? { mode: "conflate", interval_ms: 1000 } : this.mode; }

  subscribe(symbols) {
    symbols.forEach((s) => this.wanted.add(s));
    this.ch.send({ type: "subscribe", symbols, ...this.effective });
  }
  unsubscribe(symbols) {
    symbols.forEach((s) => this.wanted.delete(s));
    this.ch.send({ type: "unsubscribe", symbols });
  }
  setMode(mode, interval_ms) {
    this.mode = interval_ms ? { mode, interval_ms } : { mode };
    this.resubscribe();
  }
  resubscribe() { if (this.wanted.size) this.ch.send({ type: "subscribe", symbols: [...this.wanted], ...this.effective }); }
  /** The last tick's ts per symbol (a mark to backfill from later). */
  lastTs() { return new Map([...this.last].map(([s, t]) => [s, t.ts])); }
  /** One backfill_request per symbol, from `since` (a Map symbol -> ts; default: the last tick seen);
   *  past 16 symbols one request from the oldest mark, to stay within the server's rate limit. */
  backfillAll(since = this.lastTs()) {
    const marks = [...since].filter(([s]) => this.wanted.has(s));
    if (marks.length > 16) return this.backfill(marks.map(([s]) => s), Math.min(...marks.map(([, ts]) => ts)));
    for (const [symbol, ts] of marks) this.backfill([symbol], ts);
  }
  backfill(symbols, since) { this.ch.send({ type: "backfill_request", symbols, since, interval: this.interval }); }

  onOpen(reconnect) { // subscribe first (no tick between backfill and live); after a reconnect, resume by seq
    const resume = reconnect && this.epoch !== null && Date.now() >= this.slowUntil ? Object.fromEntries([...this.wanted].map((s) => [s, this.last.get(s)?.seq]).filter(([, q]) => q != null)) : {};
    if (Object.keys(resume).length) this.ch.send({ type: "subscribe", symbols: [...this.wanted], ...this.effective, resume, epoch: this.epoch }); else this.resubscribe();
    if (reconnect) this.backfillAll(); // candles too, for the chart's buckets (an upsert)
  }

  onMessage(m) {
    switch (m.type) {
      case "market_data": return this.onTick(m);
      case "market_data_batch": for (const t of decodeBatch(m)) this.onTick(t); return;
      case "subscribed":
        if (this.epoch !== null && m.epoch !== this.epoch) {
          for (const t of this.last.values()) t.seq = null; // seq restarted: compare within one epoch only
          this.emit("seqreset", { epoch: m.epoch });
        }
        this.epoch = m.epoch; this.serverMode = m.mode;
        return this.emit("subscribed", m);
      case "backfill": return this.emit("backfill", m);
      case "gap": { const p = this.last.get(m.symbol); if (p?.seq != null && m.to_seq !== null) p.seq = Math.max(p.seq, m.to_seq);
        this.emit("gap", { symbol: m.symbol, from: m.from_seq, to: m.to_seq, reason: m.reason }); return p && this.backfill([m.symbol], p.ts); } // any reason: the range cannot be had, candles fill it
      default: return this.emit("message", m);
    }
  }

  onTick(t) {
    const prev = this.last.get(t.symbol), conflated = this.serverMode === "conflate";
    if (prev && prev.seq !== null) {
      if (t.seq <= prev.seq) return; // seen already (the latest tick a subscribe repeats)
      if (t.seq > prev.seq + 1 && !conflated && !prev.conflated) {
        this.emit("gap", { symbol: t.symbol, from: prev.seq + 1, to: t.seq - 1 });
        this.backfill([t.symbol], prev.ts);
      }
    }
    this.last.set(t.symbol, { ...t, conflated });
    this.emit("tick", t);
  }
}

/** 1-s buckets (by default) keyed by open time, at most `max`, the newest kept. A tick sets its
 *  bucket's value to its price; a candle [ts, open, high, low, close, volume] sets it to its close. */
export class Series {
  constructor(max = 300, bucketMs = 1000) { Object.assign(this, { max, bucketMs, buckets: new Map(), version: 0, sorted: [] }); }
  add(ts, price) { this.buckets.set(ts - (ts % this.bucketMs), price); this.changed(); }
  merge(candles) {
    for (const c of candles) this.buckets.set(c[0], c[4]);
    this.changed();
  }
  changed() {
    this.version++;
    if (this.buckets.size > this.max) {
      const keys = [...this.buckets.keys()].sort((a, b) => a - b);
      for (const k of keys.slice(0, keys.length - this.max)) this.buckets.delete(k);
    }
  }
  /** [[openTime, value], ...] oldest first. */
  points() {
    if (this.sortedAt !== this.version) {
      this.sorted = [...this.buckets].sort((a, b) => a[0] - b[0]);
      this.sortedAt = this.version;
    }
    return this.sorted;
  }
}

/** /ws/notifications with the HTTP fallback: while the socket is reconnecting, GET
 *  /api/notifications?after=<last id> every `pollMs`. Event: change. `items`: id -> notification. */
export class Notifications extends EventTarget {
  constructor(opts = {}) {
    super();
    this.base = opts.base ?? location.origin; this.pollMs = opts.pollMs ?? 5000;
    this.items = new Map(); this.lastId = 0; this.polling = null;
    this.ch = new Channel(PATHS.notifications, opts);
    this.ch.addEventListener("message", (e) => this.onMessage(e.detail));
    this.ch.addEventListener("state", (e) => this.poll(e.detail.state === "reconnecting"));
  }
  start() { this.ch.start(); }
  get unread() { let n = 0; for (const x of this.items.values()) n += x.read ? 0 : 1; return n; }
  add(list) {
    for (const n of list) { this.items.set(n.id, n); this.lastId = Math.max(this.lastId, n.id); }
    this.dispatchEvent(new CustomEvent("change"));
  }
  onMessage(m) {
    if (m.type === "initial_notifications") this.add(m.notifications);
    else if (m.type === "notification") this.add([m.notification]);
    else if (m.type === "marked_read") {
      for (const id of m.ids) { const n = this.items.get(id); if (n) n.read = true; }
      this.dispatchEvent(new CustomEvent("change"));
    }
  }
  poll(on) {
    if (on === (this.polling !== null)) return;
    clearInterval(this.polling);
    this.polling = on ? setInterval(() => this.fetchNew(), this.pollMs) : null;
    if (on) this.fetchNew();
  }
  async fetchNew() {
    const r = await this.http("GET", `/api/notifications?after=${this.lastId}`);
    if (r) this.add((await r.json()).notifications);
  }
  /** Over the socket when it is up, else POST /api/notifications/read. */
  async markRead(ids) {
    if (this.ch.send({ type: "mark_read", ids })) return;
    const r = await this.http("POST", "/api/notifications/read", { ids });
    if (r) this.onMessage({ type: "marked_read", ids: (await r.json()).ids });
  }
  async http(method, path, body) {
    try {
      const headers = { Authorization: `Bearer ${await this.ch.fetchToken("http")}`, "Content-Type": "application/json" };
      const r = await fetch(this.base + path, { method, headers, body: body && JSON.stringify(body) });
      return r.ok ? r : null;
    } catch (e) {
      return null;
    }
  }
}
