// The exchange board's HTTP calls (docs/exchange.md). Reading other members' listings names
// the purpose `exchange` (the data policy grants it for the category `listings`); the API
// refuses such a read without it (`purpose_required`). A member's own listings,
// conversations and arrangements are their own data and name no purpose.
import { api } from "./api.js";

export const PURPOSE = "exchange";
const enc = encodeURIComponent;

/** "?a=1&b=x" from the non-empty values, in the order given. */
export function query(params) {
  const parts = Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${enc(v)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

let config = null;
export async function boardConfig() {
  if (!config) config = await api("/v1/listings/config");
  return config;
}

// Only these two orders exist: the board never ranks anyone (docs/exchange.md).
export const ORDERS = ["newest", "shuffle"];
export const FILTERS = ["kind", "category", "area", "currency", "q", "order"];

export const search = (filters, cursor) => api(`/v1/listings${query({ purpose: PURPOSE, ...filters, limit: 20, cursor })}`);
export const listing = (id) => api(`/v1/listings/${enc(id)}${query({ purpose: PURPOSE })}`);
export const mine = (cursor) => api(`/v1/listings/mine${query({ limit: 50, cursor })}`);
export const moderation = (id) => api(`/v1/listings/${enc(id)}/moderation`);
export const post = (body) => api("/v1/listings", { method: "POST", body });
export const edit = (id, body) => api(`/v1/listings/${enc(id)}`, { method: "PATCH", body });
export const act = (id, action) => api(`/v1/listings/${enc(id)}/${action}`, { method: "POST" });
export const answer = (id, message) => api(`/v1/listings/${enc(id)}/conversations`, { method: "POST", body: { message } });

export const conversations = (cursor) => api(`/v1/conversations${query({ limit: 50, cursor })}`);
export const conversation = (id) => api(`/v1/conversations/${enc(id)}`);
export const messages = (id, after) => api(`/v1/conversations/${enc(id)}/messages${query({ after, limit: 500 })}`);
export const send = (id, text) => api(`/v1/conversations/${enc(id)}/messages`, { method: "POST", body: { text } });
export const propose = (id, body) => api(`/v1/conversations/${enc(id)}/arrangements`, { method: "POST", body });

export const arrangements = (conversationId) => api(`/v1/arrangements${query({ conversation: conversationId, limit: 50 })}`);
export const arrange = (id, action, body) => api(`/v1/arrangements/${enc(id)}/${action}`, { method: "POST", body });
