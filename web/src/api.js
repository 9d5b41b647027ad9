// The HTTP API client: JSON in and out, a timeout so a slow link never hangs a screen, and
// errors as ApiError(code) where code is the API's own stable error code (docs/api.md).
const TIMEOUT_MS = 30000;
let token = null;
let onUnauthenticated = null;

export class ApiError extends Error {
  constructor(code, message, status) { super(message); this.code = code; this.status = status; }
}

export const setToken = (value) => { token = value; };
export const hasToken = () => Boolean(token);
export const whenUnauthenticated = (fn) => { onUnauthenticated = fn; };

export async function api(path, { method = "GET", body, retried = false } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  let res;
  try {
    const headers = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (token) headers.authorization = `Bearer ${token}`;
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: ctl.signal });
  } catch (err) {
    throw new ApiError(err.name === "AbortError" ? "timeout" : "network", String(err.message || err), 0);
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try { data = await res.json(); } catch { /* an empty or non-JSON body */ }
  if (res.ok) return data;
  const e = data && data.error ? data.error : { code: res.status >= 500 ? "server" : "http_error", message: res.statusText };
  // A token expires after minutes: sign in again once (the key is unlocked) and retry.
  if (res.status === 401 && token && !retried && onUnauthenticated && path !== "/v1/auth/token") {
    if (await onUnauthenticated()) return api(path, { method, body, retried: true });
  }
  throw new ApiError(e.code, e.message, res.status);
}
