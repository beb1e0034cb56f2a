// Hash routes (#/subscriptions/abc?tab=log): the console is one static page, so every address it
// shows can be bookmarked and reloaded without the server knowing its routes.
import { useEffect, useState } from "../vendor/htm-preact.mjs";

export function parse(hash = location.hash) {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query) };
}

export function useRoute() {
  const [route, setRoute] = useState(parse());
  useEffect(() => {
    const changed = () => setRoute(parse());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

export function href(...parts) {
  const last = parts[parts.length - 1];
  let query = "";
  if (last && typeof last === "object") {
    parts = parts.slice(0, -1);
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(last)) if (value !== undefined && value !== null && value !== "") params.set(name, value);
    query = params.toString() ? `?${params}` : "";
  }
  return `#/${parts.map((part) => encodeURIComponent(part)).join("/")}${query}`;
}

export function go(...parts) {
  location.hash = href(...parts);
}

// Replaces the query of the current page without adding a history entry (filters, tabs).
export function setQuery(values) {
  const { parts, query } = parse();
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined || value === null || value === "") query.delete(name);
    else query.set(name, value);
  }
  const text = query.toString();
  history.replaceState(null, "", `${location.pathname}#/${parts.map(encodeURIComponent).join("/")}${text ? `?${text}` : ""}`);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}
