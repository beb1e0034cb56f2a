// Events: pick a resource, filter, page through its log with the cursor, follow new events live and
// open one to see it whole. Each request loads one page (50 events) and nothing more.
import { get } from "../lib/api.js";
import { setQuery } from "../lib/router.js";
import { Dialog, ErrorNotice, Field, html, Json, localInput, Page, Table, Time, useEffect, usePages, usePoll, useRef, useResources, useState } from "../lib/ui.js";

const PAGE = 50;
const FOLLOW_EVERY_MS = 2000;
const KEPT = 1000; // events kept on screen while following; older ones scroll away

function ResourcePicker({ value, onInput }) {
  const resources = useResources();
  // Resources whose events the person may read at least some of ("all", "some", or "unknown" when an
  // external decision point decides); resources they may only publish to are left out.
  const names = (resources.data || []).filter((item) => item.read !== "none").map((item) => item.resource);
  return html`<div>
    <${Field}
      label="Resource"
      name="resource"
      hint=${resources.error ? "Type the resource's URN." : "The resources whose events you may read. You can also type a URN."}
      value=${value}
      onInput=${onInput}
      list="resources"
      required
      autocomplete="off"
      placeholder="urn:altinn:resource:example"
    />
    <datalist id="resources">${names.map((name) => html`<option value=${name} />`)}</datalist>
  </div>`;
}

export function EventsPage({ route }) {
  const initial = Object.fromEntries(["resource", "subject", "type", "source", "from"].map((name) => [name, route.query.get(name) || ""]));
  const [form, setForm] = useState(initial);
  const [shown, setShown] = useState(initial.resource ? initial : null);
  const [follow, setFollow] = useState(false);
  const [opened, setOpened] = useState(null);
  const [announcement, setAnnouncement] = useState("");
  // Read when a first page is loaded: following starts at the events stored from now on, so it never
  // walks the stored log 50 events at a time.
  const following = useRef(false);

  const list = usePages(
    async (after) => {
      const params = { resource: shown.resource, subject: shown.subject, type: shown.type, source: shown.source, size: PAGE };
      if (after) params.after = after;
      else if (following.current) params.from = "now";
      else if (shown.from) params.from = shown.from === "now" ? "now" : new Date(shown.from).toISOString();
      const { data, headers } = await get("events", params);
      return { items: data, headers };
    },
    { key: (e) => `${e.id}|${e.source}`, keep: KEPT, enabled: Boolean(shown) },
    [shown],
  );
  const events = list.items;

  const more = async () => {
    const count = await list.more();
    if (count) setAnnouncement(`${count} more event${count === 1 ? "" : "s"}`);
    return count;
  };
  const followLive = (on) => {
    following.current = on;
    setFollow(on);
    if (!on) return;
    // The list starts again, empty, at the events stored from now on.
    list.update(() => []);
    list.reload();
  };
  // A full page means more are waiting: the next is read at once, not 2 seconds later.
  usePoll(async () => ((await more()) === PAGE ? 0 : undefined), FOLLOW_EVERY_MS, follow && Boolean(shown) && !list.error);

  useEffect(() => {
    if (list.error && follow) {
      following.current = false;
      setFollow(false);
    }
  }, [list.error]);

  const submit = (event) => {
    event.preventDefault();
    following.current = false;
    setFollow(false);
    setQuery(form);
    setShown({ ...form });
  };
  const set = (name) => (value) => setForm({ ...form, [name]: value });

  const columns = [
    { title: "Time", cell: (e) => html`<${Time} value=${e.time} />` },
    { title: "Type", cell: (e) => html`<code>${e.type}</code>` },
    { title: "Subject", cell: (e) => html`<code>${e.subject || ""}</code>` },
    { title: "Source", cell: (e) => html`<code>${e.source}</code>` },
    { title: "Event", cell: (e) => html`<button type="button" class="link" onClick=${() => setOpened(e)} aria-label=${`Open event ${e.id}`}>${e.id}</button>` },
  ];

  return html`<${Page} title="Events">
    <form onSubmit=${submit} aria-label="Choose events">
      <${ResourcePicker} value=${form.resource} onInput=${set("resource")} />
      <fieldset>
        <legend>Filters (optional, exact match)</legend>
        <div class="filters">
          <${Field} label="Subject" name="subject" value=${form.subject} onInput=${set("subject")} placeholder="/party/50001234" />
          <${Field} label="Type" name="type" value=${form.type} onInput=${set("type")} placeholder="app.instance.created" />
          <${Field} label="Source" name="source" value=${form.source} onInput=${set("source")} />
          <${Field}
            label="Start"
            name="from"
            value=${form.from === "now" || !form.from ? form.from : "time"}
            onInput=${(value) => set("from")(value === "time" ? localInput(new Date(Date.now() - 3600_000)) : value)}
            options=${[["", "The oldest stored event"], ["now", "New events only"], ["time", "A time…"]]}
          />
          ${form.from && form.from !== "now"
            ? html`<${Field} label="Start time (your time zone)" name="fromTime" type="datetime-local" value=${form.from} onInput=${set("from")} />`
            : null}
        </div>
      </fieldset>
      <div class="form-actions"><button type="submit" class="primary">Show events</button></div>
    </form>
    <${ErrorNotice} error=${list.error} onRetry=${() => shown && list.retry()} />
    ${shown &&
    html`<section aria-labelledby="events-heading">
      <h2 id="events-heading">Events of <code>${shown.resource}</code></h2>
      <div class="form-actions">
        <${Field}
          type="checkbox"
          label="Follow new events live"
          name="follow"
          value=${follow}
          onInput=${followLive}
          hint="Shows the events stored from now on: the list starts again, and is checked every 2 seconds with the cursor, so none is skipped."
        />
      </div>
      <p class="visually-hidden" aria-live="polite">${announcement}</p>
      ${list.loading && !events.length ? html`<p class="loading" role="status">Loading events…</p>` : null}
      <${Table}
        caption=${`Events of ${shown.resource}`}
        columns=${columns}
        rows=${events.map((e) => ({ ...e, key: `${e.id}|${e.source}` }))}
        empty=${list.loaded
          ? follow
            ? "No matching events you may read stored since you started following."
            : "No matching events you may read in the part of the log read so far."
          : "Loading…"}
      />
      <div class="pager">
        <button type="button" class="secondary" disabled=${!list.cursor || list.loading || follow} onClick=${more}>
          ${list.loading && !follow ? "Loading…" : "Load more"}
        </button>
        <span class="muted">${events.length} event${events.length === 1 ? "" : "s"} shown${list.last === 0 && list.loaded ? ", none newer yet" : ""}</span>
      </div>
    </section>`}
    <${Dialog} title="Event" open=${Boolean(opened)} onClose=${() => setOpened(null)}>
      ${opened && html`<${Json} value=${opened} label=${`Event ${opened.id}`} />`}
    <//>
  <//>`;
}
