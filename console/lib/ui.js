// The console's building blocks: rendering (htm + Preact), the error notice, fields with labels and
// hints, tables, times, and the hook every page loads its data with.
import { html, useCallback, useEffect, useRef, useState } from "../vendor/htm-preact.mjs";
import { explain, nextCursor, resources } from "./api.js";
import { signIn } from "./auth.js";

export { html };
export { render, useCallback, useEffect, useMemo, useRef, useState } from "../vendor/htm-preact.mjs";

// Loads data for a page and reloads it on demand: { data, error, loading, reload, set }.
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const run = useCallback(async () => {
    const mine = ++generation.current;
    setState((previous) => ({ ...previous, loading: true }));
    try {
      const data = await load();
      if (mine === generation.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === generation.current) setState((previous) => ({ ...previous, error, loading: false }));
    }
  }, deps);
  useEffect(() => {
    run();
  }, [run]);
  return { ...state, reload: run, set: (data) => setState({ data, error: null, loading: false }) };
}

// Runs an action from a button or form: { busy, error, run }. `run` resolves to the action's result,
// or undefined when it failed (the error is then shown by <ErrorNotice>).
export function useAction() {
  const [state, setState] = useState({ busy: false, error: null });
  const run = useCallback(async (action) => {
    setState({ busy: true, error: null });
    try {
      const result = await action();
      setState({ busy: false, error: null });
      return result ?? true;
    } catch (error) {
      setState({ busy: false, error });
      return undefined;
    }
  }, []);
  return { ...state, run, clear: () => setState({ busy: false, error: null }) };
}

// Runs `fn` now and then `ms` after each run ends while `active`: never two runs at once, nothing
// while the tab is hidden (it runs again as soon as the tab is shown), and nothing after unmount.
// `fn(signal)` gets an AbortSignal that is aborted when polling stops; a run that resolves to a
// number waits that many milliseconds instead (0: at once, as a log catching up does). Returns a
// function that runs `fn` at once (a Refresh button), polling or not.
export function usePoll(fn, ms, active) {
  const latest = useRef(fn);
  latest.current = fn;
  const running = useRef(null); // the run in flight, shared by every activation: never two at once
  const wake = useRef(null);

  const once = useCallback(async (signal) => {
    while (running.current) await running.current;
    if (signal.aborted) return undefined;
    const run = (async () => latest.current(signal))();
    const settled = run.catch(() => undefined);
    running.current = settled;
    try {
      return await settled;
    } finally {
      if (running.current === settled) running.current = null;
    }
  }, []);

  useEffect(() => {
    if (!active) {
      wake.current = null;
      return undefined;
    }
    const controller = new AbortController();
    let timer = null;
    let ticking = false;
    const tick = async () => {
      clearTimeout(timer);
      timer = null;
      if (ticking || controller.signal.aborted || document.hidden) return;
      ticking = true;
      let result;
      try {
        result = await once(controller.signal);
      } finally {
        ticking = false;
      }
      if (controller.signal.aborted || document.hidden) return;
      timer = setTimeout(tick, typeof result === "number" ? result : ms);
    };
    const visibility = () => {
      if (document.hidden) {
        clearTimeout(timer);
        timer = null;
      } else if (!timer) tick();
    };
    wake.current = tick;
    document.addEventListener("visibilitychange", visibility);
    tick();
    return () => {
      controller.abort();
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", visibility);
      if (wake.current === tick) wake.current = null;
    };
  }, [active, ms]);

  return useCallback(() => (wake.current ? wake.current() : once(new AbortController().signal)), []);
}

// A list read one page at a time along the Link header's cursor. `load(cursor)` resolves to
// { items, headers } (cursor null: the first page). One request at a time: a reload asked for while
// one runs follows it, a "more" is dropped. Appended items already shown (same `key`) are left out,
// and at most `keep` of the newest are kept. `more()` resolves to the page's item count (null when
// nothing was read). `deps` reload the list when they change; `enabled` false reads nothing.
export function usePages(load, { cursor = "after", key = (item) => item.id, keep = Infinity, enabled = true } = {}, deps = []) {
  const [state, setState] = useState({ items: [], cursor: null, loading: enabled, error: null, loaded: false, last: null, failed: null });
  const latest = useRef(load);
  latest.current = load;
  const options = useRef({ cursor, key, keep });
  options.current = { cursor, key, keep };
  const busy = useRef(false);
  const queued = useRef(false);
  const next = useRef(null);

  const page = useCallback(async (append) => {
    if (busy.current) {
      if (!append) queued.current = true;
      return null;
    }
    if (append && !next.current) return null;
    busy.current = true;
    setState((previous) => ({ ...previous, loading: true, error: null, failed: null }));
    let count = null;
    try {
      const { items, headers } = await latest.current(append ? next.current : null);
      const { cursor: name, key: keyOf, keep: kept } = options.current;
      next.current = nextCursor(headers, name);
      count = items.length;
      setState((previous) => {
        let list = items;
        if (append) {
          const seen = new Set(previous.items.map(keyOf));
          list = [...previous.items, ...items.filter((item) => !seen.has(keyOf(item)))];
        }
        if (list.length > kept) list = list.slice(-kept);
        return { items: list, cursor: next.current, loading: false, error: null, loaded: true, last: items.length, failed: null };
      });
    } catch (error) {
      setState((previous) => ({ ...previous, loading: false, error, failed: append ? "more" : "reload" }));
    } finally {
      busy.current = false;
      if (queued.current) {
        queued.current = false;
        page(false);
      }
    }
    return count;
  }, []);

  useEffect(() => {
    if (enabled) page(false);
  }, [enabled, ...deps]);

  return {
    ...state,
    more: () => page(true),
    reload: () => page(false),
    retry: () => page(state.failed === "more"),
    // Changes the shown items in place (an item created or changed on this page).
    update: (change) => setState((previous) => ({ ...previous, items: change(previous.items) })),
  };
}

// The resources the signed-in person may use ({ resource, publish, read, subscribe }), read once per
// sign-in and shared by every form that offers them.
export function useResources() {
  return useLoad(resources, []);
}

// An error in words: what happened, Herald's own explanation, and what to do next. `actions` gives a
// page's own advice for a status where the general one does not fit ({ 409: "…" }). The notice takes
// the focus when a different error comes (not when a poll brings the same one back); `quiet` leaves
// the focus where it is (polled errors: role="alert" still announces them).
export function ErrorNotice({ error, onRetry, actions, quiet = false }) {
  const ref = useRef(null);
  const shown = useRef(null);
  const identity = error ? `${error.status ?? ""}|${error.problem?.detail ?? error.message ?? ""}` : null;
  useEffect(() => {
    if (identity && identity !== shown.current && !quiet) ref.current?.focus();
    shown.current = identity;
  }, [identity]);
  if (!error) return null;
  const words = explain(error);
  if (actions?.[error.status]) words.action = actions[error.status];
  return html`<div class="notice notice-error" role="alert" tabindex="-1" ref=${ref}>
    <p class="notice-title">${words.title}</p>
    ${words.detail && html`<p>${words.detail}</p>`}
    ${words.details?.length ? html`<ul>${words.details.map((line) => html`<li>${line}</li>`)}</ul>` : null}
    <p class="notice-action">${words.action}</p>
    ${words.signIn && html`<button type="button" onClick=${() => signIn()}>Sign in again</button>`}
    ${onRetry && !words.signIn && html`<button type="button" class="secondary" onClick=${onRetry}>Try again</button>`}
  </div>`;
}

export function Notice({ kind = "info", children }) {
  return html`<div class=${`notice notice-${kind}`} role="status">${children}</div>`;
}

export function Loading({ what = "Loading" }) {
  return html`<p class="loading" role="status" aria-live="polite">${what}…</p>`;
}

let fieldCounter = 0;
export function useId(prefix = "f") {
  const id = useRef(null);
  if (id.current === null) id.current = `${prefix}-${++fieldCounter}`;
  return id.current;
}

// A labelled input, select or textarea with an optional hint, all tied together for screen readers.
export function Field({ label, hint, type = "text", value, onInput, options, rows, required, name, ...rest }) {
  const id = useId(name || "field");
  const hintId = hint ? `${id}-hint` : undefined;
  const change = (event) => onInput(type === "checkbox" ? event.target.checked : event.target.value);
  let control;
  if (options) {
    control = html`<select id=${id} name=${name} value=${value} onChange=${change} aria-describedby=${hintId} required=${required} ...${rest}>
      ${options.map((option) =>
        Array.isArray(option) ? html`<option value=${option[0]}>${option[1]}</option>` : html`<option value=${option}>${option}</option>`,
      )}
    </select>`;
  } else if (rows) {
    control = html`<textarea id=${id} name=${name} rows=${rows} value=${value} onInput=${change} aria-describedby=${hintId} required=${required} ...${rest}></textarea>`;
  } else if (type === "checkbox") {
    return html`<div class="field field-check">
      <input id=${id} name=${name} type="checkbox" checked=${value} onChange=${change} aria-describedby=${hintId} ...${rest} />
      <label for=${id}>${label}</label>
      ${hint && html`<p class="hint" id=${hintId}>${hint}</p>`}
    </div>`;
  } else {
    control = html`<input id=${id} name=${name} type=${type} value=${value} onInput=${change} aria-describedby=${hintId} required=${required} ...${rest} />`;
  }
  return html`<div class="field">
    <label for=${id}>${label}${required ? html`<span class="required" aria-hidden="true"> *</span>` : null}</label>
    ${hint && html`<p class="hint" id=${hintId}>${hint}</p>`}
    ${control}
  </div>`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function ago(value) {
  const seconds = Math.round((new Date(value).getTime() - Date.now()) / 1000);
  const steps = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [Infinity, "day"],
  ];
  let amount = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
    amount /= size;
  }
  return "";
}

// A time as the person reads it (local, with how long ago), machine-readable in datetime.
export function Time({ value }) {
  if (!value) return html`<span class="muted">never</span>`;
  const date = new Date(value);
  return html`<time datetime=${value} title=${date.toISOString()}>${dateFormat.format(date)} <span class="muted">(${ago(value)})</span></time>`;
}

export function Status({ value }) {
  const tone =
    {
      active: "ok",
      Delivered: "ok",
      Succeeded: "ok",
      Completed: "ok",
      delivered: "ok",
      pending: "wait",
      New: "wait",
      Sending: "wait",
      Processing: "wait",
      Registered: "wait",
      Accepted: "wait",
      Processed: "wait",
      Cancelled: "neutral",
      disabled: "bad",
      failed: "bad",
      Failed: "bad",
      deadlettered: "bad",
      // delivery outcomes and backfill states
      retry: "wait",
      running: "wait",
      completed: "ok",
      dead: "bad",
      gone: "bad",
      refused: "bad",
    }[value] || (String(value).startsWith("Failed") ? "bad" : "neutral");
  return html`<span class=${`status status-${tone}`}>${value}</span>`;
}

// A page's heading takes the focus when the page opens, so screen readers announce where one is.
export function Page({ title, actions, children }) {
  const heading = useRef(null);
  useEffect(() => {
    document.title = `${title} · Herald Console`;
    heading.current?.focus();
  }, [title]);
  return html`<section class="page">
    <header class="page-header">
      <h1 tabindex="-1" ref=${heading}>${title}</h1>
      ${actions && html`<div class="page-actions">${actions}</div>`}
    </header>
    ${children}
  </section>`;
}

// A table that scrolls sideways when it is wider than the page, and shows each row as a card on a
// phone (console.css, data-title). The explicit roles keep it a table for screen readers there:
// some browsers drop a table's semantics when CSS changes its display.
export function Table({ caption, columns, rows, empty = "Nothing to show." }) {
  if (!rows.length) return html`<p class="empty">${empty}</p>`;
  return html`<div class="table-scroll" role="region" aria-label=${caption} tabindex="0">
    <table role="table">
      <caption class="visually-hidden">${caption}</caption>
      <thead role="rowgroup"><tr role="row">${columns.map((column) => html`<th scope="col" role="columnheader">${column.title}</th>`)}</tr></thead>
      <tbody role="rowgroup">
        ${rows.map(
          (row, index) =>
            html`<tr role="row" key=${row.key ?? index}>${columns.map((column) => html`<td role="cell" data-title=${column.title}>${column.cell(row)}</td>`)}</tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

export function Json({ value, label = "JSON" }) {
  return html`<pre class="json" tabindex="0" role="region" aria-label=${label}><code>${JSON.stringify(value, null, 2)}</code></pre>`;
}

// A modal dialog built on <dialog>: focus is trapped by the browser and Escape closes it.
export function Dialog({ title, open, onClose, children }) {
  const ref = useRef(null);
  const titleId = useId("dialog-title"); // unique: a page may hold several dialogs
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-labelledby=${titleId} onClose=${onClose}>
    <div class="dialog-header">
      <h2 id=${titleId}>${title}</h2>
      <button type="button" class="secondary" onClick=${onClose}>Close</button>
    </div>
    ${open ? children : null}
  </dialog>`;
}

// Asks before a destructive action: the action's own words on the button, Escape or the other
// button dismisses, and a failure is shown inside the dialog.
export function Confirm({ open, title, confirm = "Delete", dismiss = "Keep it", busy, error, onConfirm, onClose, children }) {
  return html`<${Dialog} title=${title} open=${open} onClose=${onClose}>
    ${children}
    <${ErrorNotice} error=${error} />
    <div class="form-actions">
      <button type="button" class="danger" disabled=${busy} onClick=${onConfirm}>${confirm}</button>
      <button type="button" class="secondary" onClick=${onClose}>${dismiss}</button>
    </div>
  <//>`;
}

export function Copy({ text, label = "Copy" }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setCopied(false);
    }
  };
  return html`<button type="button" class="secondary" onClick=${copy}>${copied ? "Copied" : label}</button>`;
}

// Splits "a, b" or lines into a list; an empty field means "no filter" (null).
export function listOf(text, separators = /[\n,]/) {
  const items = String(text || "")
    .split(separators)
    .map((item) => item.trim())
    .filter(Boolean);
  return items.length ? items : null;
}

// A date as <input type="datetime-local"> shows it: the person's own time zone, to the minute.
export function localInput(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

export function textOf(value) {
  if (value === null || value === undefined) return "";
  return Array.isArray(value) ? value.join(", ") : String(value);
}
