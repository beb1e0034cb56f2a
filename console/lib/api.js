// Herald's /api/v1 as the console calls it: the signed-in person's token on every request, and every
// error turned into words that say what happened and what to do about it.
import { accessToken, signIn } from "./auth.js";

export const API = "/api/v1";

// An answer Herald gave that was not a success, or no answer at all (status 0).
export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `Herald answered ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.retryAfter = retryAfter;
  }
}

function url(path, query) {
  const target = new URL(path.startsWith("/") ? path : `${API}/${path}`, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) target.searchParams.append(name, item);
  }
  return target.pathname + target.search;
}

// Calls Herald and returns { data, headers, status }; throws ApiError for anything but 2xx.
export async function call(path, { method = "GET", body, query, signal } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  const token = await accessToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "No answer", detail: String(error.message || error) });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { title: response.statusText, detail: text };
    throw new ApiError(response.status, problem, response.headers.get("Retry-After"));
  }
  return { data, headers: response.headers, status: response.status };
}

export const get = (path, query, signal) => call(path, { query, signal });
export const post = (path, body) => call(path, { method: "POST", body: body ?? {} });
export const put = (path, body) => call(path, { method: "PUT", body });
export const patch = (path, body) => call(path, { method: "PATCH", body });
export const del = (path, query) => call(path, { method: "DELETE", query });

// The cursor a `Link: <…>; rel="next"` header carries (Herald's pages all link their successor).
export function nextCursor(headers, name = "after") {
  const link = headers.get("Link");
  if (!link) return null;
  const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  if (!match) return null;
  return new URL(match[1], location.origin).searchParams.get(name);
}

// The resources the signed-in person may use, read once per sign-in (a new token is a new sign-in)
// and kept in memory only; a failed read is not kept, so the next form asks again.
let known = null;
export async function resources() {
  const token = await accessToken();
  if (!known || known.token !== token) {
    const promise = get("resources").then(({ data }) => data.resources || []);
    known = { token, promise };
    promise.catch(() => {
      if (known?.promise === promise) known = null;
    });
  }
  return known.promise;
}

const ACTIONS = {
  0: "Check your network connection, or whether Herald is running, and try again.",
  400: "Correct what is named below and try again.",
  401: "Sign in again: your sign-in has expired or Herald does not accept it. You come back to this page, but what you typed and did not save is lost.",
  403: "Ask an administrator of this resource to grant you access, or sign in as someone who has it.",
  404: "It may have been deleted, or it belongs to someone else. Go back to the list and reload it.",
  409: "Someone changed it at the same time, or it clashes with something that exists. Reload and try again.",
  413: "Send less at once.",
  415: "The console sent something Herald does not take; reload the page.",
  422: "Correct what is named below and try again.",
  429: "Herald is limiting how often you may do this. Wait a little and try again.",
};

// What the person reads when a call fails: a sentence for what happened and one for what to do.
export function explain(error) {
  if (!(error instanceof ApiError)) {
    return { title: "Something went wrong in the console", detail: String(error?.message || error), action: "Reload the page." };
  }
  const { status, problem } = error;
  const title =
    status === 0 ? "Herald could not be reached" : problem.title && problem.title !== "about:blank" ? problem.title : `Herald answered ${status}`;
  let action = ACTIONS[status];
  // Herald's detail often names the way out ("… without a subjectFilter", "omit it to send as Herald's
  // default sender"): the advice must not contradict it.
  if (status === 403 && problem.detail) {
    action = "If Herald's explanation above names what to change, do that; otherwise ask an administrator to grant you access, or sign in as someone who has it.";
  }
  if (status === 429 && error.retryAfter) action = `Herald is limiting how often you may do this. Try again in ${error.retryAfter} seconds.`;
  if (status >= 500) action = "Herald failed on its side. Try again in a minute; if it keeps failing, tell Herald's operators the time it happened.";
  // Each error item once: Herald's detail often already quotes the first of them.
  const details = (problem.errors || [])
    .map((item) => [item.location || item.attribute || (item.index !== undefined ? `item ${item.index}` : ""), item.detail].filter(Boolean).join(": "))
    .filter((line) => line && !(problem.detail || "").includes(line));
  return { title, detail: problem.detail || "", action: action || "Try again.", details, status, signIn: status === 401 };
}

export { signIn };
