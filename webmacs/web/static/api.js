// REST calls with the Bearer token (REST never reads the session cookie: no request can be
// forged cross-site). A 401 on any call means the session is over: the token is forgotten and
// `onUnauthorized` takes the user back to the login form.

// sessionStorage rather than localStorage: the token survives a reload of this tab but not the
// tab itself, is not shared with other tabs and does not stay on disk after the browser closes.
const TOKEN_KEY = "webmacs.token";
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// The server's `detail`: a string, or for 422 a list of {loc, msg, type}.
export function detailText(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).join(" ");
  return `HTTP ${status}`;
}

// `filename*=UTF-8''…` (RFC 5987) if present, else the ASCII `filename="…"`.
export function attachmentName(disposition, fallback) {
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch { /* fall through to the ASCII name */ }
  }
  const plain = /filename="([^"]+)"/i.exec(disposition || "");
  return plain ? plain[1] : fallback;
}

export class Api {
  constructor({ onUnauthorized }) {
    this.onUnauthorized = onUnauthorized;
  }

  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  forget() {
    sessionStorage.removeItem(TOKEN_KEY);
  }

  async login(email, password) {
    // Same origin: the response's Set-Cookie (the WebSocket's credential) is stored.
    const resp = await fetch(`${BASE}/auth/login`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    const body = await resp.json().catch(() => null);
    if (!resp.ok) throw new ApiError(resp.status, detailText(body, resp.status));
    sessionStorage.setItem(TOKEN_KEY, body.access_token);
    return body;
  }

  // Revokes the token and clears the cookie; the local session ends whatever the answer.
  async logout() {
    try {
      await this.send("POST", "/auth/logout");
    } catch { /* already logged out, or offline: nothing more to do */ }
    this.forget();
  }

  async send(method, path, body) {
    const resp = await this.fetch(method, path, body);
    if (resp.status === 204) return null;
    return resp.json();
  }

  async fetch(method, path, body) {
    // Logged out already (a timer or a click after the session ended): no call, no second notice.
    if (!this.token) throw new ApiError(401, "Not logged in.");
    const headers = { Authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(BASE + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.ok) return resp;
    const detail = detailText(await resp.json().catch(() => null), resp.status);
    if (resp.status === 401) {
      this.forget();
      this.onUnauthorized(detail);
    }
    throw new ApiError(resp.status, detail);
  }

  // The CSV export needs the Bearer token, so no plain link: fetch it and save it from a Blob.
  async download(path, fallbackName) {
    const resp = await this.fetch("GET", path);
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = attachmentName(resp.headers.get("Content-Disposition"), fallbackName);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }
}
