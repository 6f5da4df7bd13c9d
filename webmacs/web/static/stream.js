// The live stream: `/ws/datapoints/stream` with reconnects, and polling `/datapoints/latest` while
// the socket stays down. `ReconnectPolicy` decides (no sockets, no clocks: tested on its own);
// `LiveStream` is the thin shell that owns the socket and the timers.

export const CONNECTING = "connecting";
export const CONNECTED = "connected";
export const RECONNECTING = "reconnecting";
export const POLLING = "polling";
export const OFFLINE = "offline";
const POLICY_VIOLATION = 1008; // the server's "this credential no longer qualifies"

export class ReconnectPolicy {
  // baseMs doubles per consecutive failure up to capMs, with "equal jitter" (half fixed, half
  // random) so that a restarted server is not hit by every page at the same instant. After
  // `pollAfter` consecutive failures the page polls until a socket stays up again. A connection
  // that lived less than `stableMs` counts as a failure too, so a server that accepts and
  // closes at once is not hammered.
  constructor({ baseMs = 500, capMs = 30000, pollAfter = 3, stableMs = 10000, random = Math.random } = {}) {
    Object.assign(this, { baseMs, capMs, pollAfter, stableMs, random });
    this.failures = 0;
    this.openedAt = null;
  }

  opened(now) {
    this.openedAt = now;
    return CONNECTED;
  }

  // The socket closed (or never opened): what to show, whether to poll, when to try again.
  closed(now) {
    if (this.openedAt !== null && now - this.openedAt >= this.stableMs) this.failures = 0;
    this.openedAt = null;
    this.failures++;
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** (this.failures - 1));
    const delayMs = Math.round(ceiling / 2 + this.random() * (ceiling / 2));
    const poll = this.failures >= this.pollAfter;
    return { state: poll ? POLLING : RECONNECTING, poll, delayMs };
  }
}

export function streamUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/datapoints/stream`;
}

export class LiveStream {
  // onReadings(datapoints, source): the stream's batches and the polled latest rows (same shape).
  // The socket is authenticated by the HttpOnly session cookie that login set: no token in the
  // URL, so none in access logs or proxies. onRefused(reason): the server closed the socket with
  // 1008 because the login stopped qualifying (logged out, password changed, user deleted or
  // demoted); the stream has stopped, since reconnecting with the same cookie cannot succeed.
  constructor({ url, poll, onReadings, onState, onLag = () => {}, onRefused = () => {},
                policy = new ReconnectPolicy(), pollMs = 1000, pingMs = 20000, silenceMs = 50000 }) {
    Object.assign(this, { url, poll, onReadings, onState, onLag, onRefused, policy, pollMs, pingMs,
                          silenceMs });
    this.state = OFFLINE;
    this.ws = null;
    this.retryTimer = null;
    this.pollTimer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
    this.stopped = true;
    this.dropped = 0;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.setState(CONNECTING);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopPolling();
    this.detach();
    this.setState(OFFLINE);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  connect() {
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.lost();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastFrameAt = performance.now();
      this.setState(this.policy.opened(Date.now()));
      this.stopPolling();
      this.pingTimer = setInterval(() => this.keepAlive(), this.pingMs);
    };
    ws.onmessage = (e) => {
      this.lastFrameAt = performance.now();
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      if (frame.type === "datapoints_batch") this.onReadings(frame.datapoints, "stream");
      else if (frame.type === "lag") {
        this.dropped += frame.dropped;
        this.onLag(frame.dropped);
      }
    };
    ws.onclose = (e) => {
      if (e.code !== POLICY_VIOLATION) {
        this.lost();
        return;
      }
      this.stop();
      this.onRefused(e.reason);
    };
  }

  // The server pings too, but a browser cannot see those: our own ping (answered by a pong)
  // detects a half-open connection that would otherwise look "connected" forever.
  keepAlive() {
    if (performance.now() - this.lastFrameAt > this.silenceMs) {
      this.lost();
      return;
    }
    try {
      this.ws?.send('{"type":"ping"}');
    } catch {
      this.lost();
    }
  }

  detach() {
    clearInterval(this.pingTimer);
    if (!this.ws) return;
    const ws = this.ws;
    this.ws = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close();
    } catch { /* already closed */ }
  }

  lost() {
    this.detach();
    if (this.stopped) return;
    const { state, poll, delayMs } = this.policy.closed(Date.now());
    this.setState(state);
    if (poll) this.startPolling();
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  startPolling() {
    if (this.pollTimer !== null) return;
    const tick = async () => {
      try {
        const rows = await this.poll();
        if (this.pollTimer !== null && rows) this.onReadings(rows, "poll");
      } catch { /* a failed poll is retried on the next tick; a 401 logs out in the API layer */ }
    };
    this.pollTimer = setInterval(tick, this.pollMs);
    tick();
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
