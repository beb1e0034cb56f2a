// One subscription: its fields and what can be done with it (edit, enable, rotate the secret, test,
// delete), its delivery health with charts, the delivery log, dead letters and backfills. The tab is
// in the address (?tab=), so each view can be bookmarked and reloaded.
import { describe, LineChart } from "../lib/chart.js";
import { ApiError, del, get, patch, post } from "../lib/api.js";
import { go, href, setQuery } from "../lib/router.js";
import {
  Dialog,
  ErrorNotice,
  Field,
  html,
  Json,
  Loading,
  Notice,
  Page,
  Status,
  Table,
  textOf,
  Time,
  useAction,
  useLoad,
  useMemo,
  usePages,
  usePoll,
  useState,
} from "../lib/ui.js";
import {
  AuthenticationFields,
  authenticationOf,
  destinationOf,
  FilterFields,
  Handshake,
  oneOrMany,
  ResourceField,
  SecretOnce,
  TARGETS,
  TargetFields,
  targetOf,
} from "./subscriptions.js";

const PAGE = 50;
const BACKFILL_POLL_MS = 1000;
const TABS = [
  ["overview", "Overview"],
  ["health", "Health"],
  ["deliveries", "Deliveries"],
  ["deadletters", "Dead letters"],
  ["backfill", "Backfill"],
];

const path = (id, rest = "") => `subscriptions/${encodeURIComponent(id)}${rest}`;
const plural = (count, one, many = `${one}s`) => `${count.toLocaleString()} ${count === 1 ? one : many}`;
const percent = (value) => (value === null || value === undefined ? "–" : `${(value * 100).toFixed(value === 1 ? 0 : 1)} %`);
const millis = (value) => (value === null || value === undefined ? "–" : `${Math.round(value).toLocaleString()} ms`);

// A datetime-local value (the person's time zone) as RFC 3339.
const instant = (local) => new Date(local).toISOString();

export function SubscriptionPage({ id, route }) {
  const tab = TABS.some(([name]) => name === route.query.get("tab")) ? route.query.get("tab") : "overview";
  const loaded = useLoad(async () => (await get(path(id))).data, [id]);
  const subscription = loaded.data;
  const target = subscription && targetOf(subscription);
  const title = target ? `${target.label}: ${target.where}` : "Subscription";
  return html`<${Page} title=${title}>
    <p class="muted">
      <a href=${href("subscriptions")}>All subscriptions</a> · <code>${id}</code>
      ${subscription && html` · <${Status} value=${subscription.status} />`}
    </p>
    <nav aria-label="Subscription views">
      <ul class="tabs">
        ${TABS.map(
          ([name, label]) => html`<li>
            <a href=${href("subscriptions", id, name === "overview" ? {} : { tab: name })} aria-current=${tab === name ? "page" : undefined}>${label}</a>
          </li>`,
        )}
      </ul>
    </nav>
    <${ErrorNotice} error=${loaded.error} onRetry=${loaded.reload} />
    ${subscription?.id !== id && loaded.loading && html`<${Loading} what="Loading the subscription" />`}
    ${subscription?.id === id && html`<${View} key=${id} tab=${tab} subscription=${subscription} onChange=${loaded.set} route=${route} />`}
  <//>`;
}

// One view per tab, keyed by the subscription so nothing of another one's lingers.
function View({ tab, subscription, onChange, route }) {
  if (tab === "health") return html`<${Health} subscription=${subscription} />`;
  if (tab === "deliveries") return html`<${Deliveries} subscription=${subscription} />`;
  if (tab === "deadletters") return html`<${DeadLetters} subscription=${subscription} />`;
  if (tab === "backfill") return html`<${Backfill} subscription=${subscription} route=${route} />`;
  return html`<${Overview} subscription=${subscription} onChange=${onChange} />`;
}

// ---- Overview -------------------------------------------------------------------------------------

function Facts({ subscription: s }) {
  const target = targetOf(s);
  const rows = [
    ["Id", html`<code>${s.id}</code>`],
    ["Status", html`<${Status} value=${s.status} />${s.disabledReason ? html` <span>${s.disabledReason}</span>` : null}`],
    ["Delivers to", target.label],
  ];
  if (target.kind === "webhook") rows.push(["Endpoint URL", html`<code>${s.endPoint}</code>`]);
  if (s.destination?.topicEndpoint) rows.push(["Topic endpoint", html`<code>${s.destination.topicEndpoint}</code>`]);
  if (s.destination?.namespace) rows.push(["Namespace", html`<code>${s.destination.namespace}</code>`]);
  if (s.destination?.name) rows.push([s.destination.type === "serviceBusQueue" ? "Queue" : "Topic", html`<code>${s.destination.name}</code>`]);
  if (target.kind === "webhook") {
    const auth = s.authentication;
    rows.push([
      "Endpoint authentication",
      !auth
        ? "None: the signature only"
        : auth.type === "entraToken"
          ? html`Bearer token as Herald, audience <code>${auth.audience}</code>`
          : html`Custom headers <code>${(auth.headerNames || []).join(", ")}</code> (values hidden)`,
    ]);
  }
  const filter = (value) => (value === null || value === undefined || value === "" ? html`<span class="muted">any</span>` : html`<code>${textOf(value)}</code>`);
  rows.push(
    ["Resource", html`<code>${s.resourceFilter}</code>`],
    ["Type filter", filter(s.typeFilter)],
    ["Subject filter", filter(s.subjectFilter)],
    ["Alternative subject filter", filter(s.alternativeSubjectFilter)],
    ["Source filter", filter(s.sourceFilter)],
    ["Include subunits", s.includeSubunits ? "Yes" : "No"],
    ["Ordering", s.ordering === "subject" ? "By subject (one subject's events in log order)" : "None (as fast as they come)"],
  );
  if (s.allowedRatePerMinute != null) rows.push(["Allowed rate", `${s.allowedRatePerMinute.toLocaleString()} pushes a minute (the endpoint's WebHook-Allowed-Rate)`]);
  rows.push(["Consumer", html`<code>${s.consumer}</code>`], ["Created by", html`<code>${s.createdBy}</code>`], ["Created", html`<${Time} value=${s.created} />`]);
  return html`<dl class="facts">${rows.map(([name, value]) => html`<dt>${name}</dt><dd>${value}</dd>`)}</dl>
    ${s.notification && html`<h3>Notification ordered for each event</h3><${Json} value=${s.notification} label="Notification" />`}`;
}

const OVERVIEW_ACTIONS = {
  409: "A test push needs an endpoint that has accepted the validation event: wait until the subscription is active, or enable it.",
};

function Overview({ subscription, onChange }) {
  const [dialog, setDialog] = useState(null);
  const [secret, setSecret] = useState(null);
  const [saved, setSaved] = useState(null);
  const [tested, setTested] = useState(null);
  const [watchSince, setWatchSince] = useState(subscription.status === "pending" ? Date.now() : null);
  const action = useAction();
  const target = targetOf(subscription);
  const notification = target.kind === "notification";
  const close = () => {
    setDialog(null);
    action.clear();
  };
  const open = (name) => {
    action.clear();
    setSaved(null);
    setDialog(name);
  };

  const enable = async () => {
    setSaved(null);
    const done = await action.run(() => post(path(subscription.id, "/enable")));
    if (done) {
      onChange(done.data);
      setWatchSince(Date.now());
      setSaved("Enabled: Herald validates the endpoint again before anything is pushed.");
    }
  };
  const test = async () => {
    setTested(null);
    const done = await action.run(() => post(path(subscription.id, "/test")));
    if (done) setTested(done.data);
  };
  const rotate = async () => {
    const done = await action.run(() => post(path(subscription.id, "/rotate-secret")));
    if (done) {
      setSecret(done.data.secret);
      const { secret: _, ...shown } = done.data;
      onChange(shown);
      setDialog(null);
    }
  };
  const remove = async () => {
    const done = await action.run(() => del(path(subscription.id)));
    if (done) go("subscriptions");
  };

  return html`<section aria-labelledby="overview-heading">
    <h2 id="overview-heading" class="visually-hidden">Overview</h2>
    <div class="form-actions" role="group" aria-label="Actions">
      <button type="button" class="primary" onClick=${() => open("edit")}>Edit</button>
      ${subscription.status === "disabled" && html`<button type="button" onClick=${enable} disabled=${action.busy}>Enable</button>`}
      ${!notification && html`<button type="button" class="secondary" onClick=${test} disabled=${action.busy}>Test push</button>`}
      ${!notification && html`<button type="button" class="secondary" onClick=${() => open("rotate")}>Rotate secret</button>`}
      <button type="button" class="danger" onClick=${() => open("delete")}>Delete</button>
    </div>
    ${!dialog && html`<${ErrorNotice} error=${action.error} actions=${OVERVIEW_ACTIONS} />`}
    ${saved && html`<${Notice} kind="ok"><p>${saved}</p><//>`}
    <${SecretOnce} secret=${secret} what="The new signing secret" />
    ${tested && html`<${TestResult} result=${tested} />`}
    ${subscription.status === "disabled" &&
    html`<${Notice} kind="warn">
      <p class="notice-title">Disabled: nothing is pushed</p>
      <p>${subscription.disabledReason || "Herald disabled it."}</p>
      <p class="notice-action">Fix the endpoint, then press Enable: Herald validates it again before pushing.</p>
    <//>`}
    ${(subscription.status === "pending" || watchSince) &&
    html`<${Handshake} key=${watchSince} subscription=${subscription} onChange=${onChange} since=${watchSince || Date.now()} />`}
    <h2>Details</h2>
    <${Facts} subscription=${subscription} />
    <${Dialog} title=${{ edit: "Edit subscription", rotate: "Rotate the signing secret?", delete: "Delete this subscription?" }[dialog] || ""} open=${Boolean(dialog)} onClose=${close}>
      ${dialog === "edit" &&
      html`<${EditForm}
        subscription=${subscription}
        onCancel=${close}
        onSaved=${(updated, changed) => {
          onChange(updated);
          setDialog(null);
          setSaved(changed);
          if (updated.status === "pending") setWatchSince(Date.now());
        }}
      />`}
      ${dialog === "rotate" &&
      html`<p>Herald makes a new signing secret and shows it once. For 24 hours from the first push after this, pushes carry signatures with both the new and the old secret, so your receiver can switch over without losing any.</p>
        <${ErrorNotice} error=${action.error} />
        <div class="form-actions">
          <button type="button" class="primary" onClick=${rotate} disabled=${action.busy}>Yes, rotate the secret</button>
          <button type="button" class="secondary" onClick=${close}>Cancel</button>
        </div>`}
      ${dialog === "delete" &&
      html`<p>The subscription <code>${subscription.id}</code> to <code>${target.where}</code> (resource <code>${subscription.resourceFilter}</code>) is deleted: Herald pushes nothing more for it, and it cannot be enabled again. This cannot be undone.</p>
        <${ErrorNotice} error=${action.error} />
        <div class="form-actions">
          <button type="button" class="danger" onClick=${remove} disabled=${action.busy}>Delete subscription</button>
          <button type="button" class="secondary" onClick=${close}>Cancel</button>
        </div>`}
    <//>
  </section>`;
}

function TestResult({ result }) {
  return html`<section aria-labelledby="test-heading" class=${`notice ${result.delivered ? "notice-ok" : "notice-error"}`} role="status">
    <h2 id="test-heading" class="notice-title">${result.delivered ? "Test push delivered" : "Test push not delivered"}</h2>
    <dl class="facts">
      <dt>Delivered</dt><dd>${result.delivered ? "Yes: the endpoint answered 2xx" : "No"}</dd>
      <dt>Status code</dt><dd>${result.statusCode ?? "no answer"}</dd>
      <dt>Latency</dt><dd>${millis(result.latencyMs)}</dd>
      ${result.error && html`<dt>Error</dt><dd>${result.error}</dd>`}
      <dt>Event</dt><dd><code>${result.eventId}</code> (webhook-id <code>${result.webhookId}</code>)</dd>
      <dt>Sent</dt><dd><${Time} value=${result.at} /></dd>
    </dl>
    ${result.responseExcerpt
      ? html`<h3>Response excerpt</h3><pre class="json" tabindex="0" aria-label="Response excerpt">${result.responseExcerpt}</pre>`
      : html`<p class="muted">The answer had no body.</p>`}
  </section>`;
}

function formOf(s) {
  const target = targetOf(s);
  return {
    kind: target.kind,
    endPoint: s.endPoint || "",
    topicEndpoint: s.destination?.topicEndpoint || "",
    namespace: s.destination?.namespace || "",
    name: s.destination?.name || "",
    resourceFilter: s.resourceFilter,
    typeFilter: Array.isArray(s.typeFilter) ? s.typeFilter.join("\n") : s.typeFilter || "",
    subjectFilter: Array.isArray(s.subjectFilter) ? s.subjectFilter.join("\n") : s.subjectFilter || "",
    sourceFilter: s.sourceFilter || "",
    alternativeSubjectFilter: s.alternativeSubjectFilter || "",
    includeSubunits: s.includeSubunits,
    ordering: s.ordering,
    authType: "keep",
    audience: s.authentication?.audience || "",
    headers: "",
  };
}

const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
const FIELD_NAMES = {
  endPoint: "endpoint URL",
  destination: "destination",
  resourceFilter: "resource",
  typeFilter: "type filter",
  subjectFilter: "subject filter",
  sourceFilter: "source filter",
  alternativeSubjectFilter: "alternative subject filter",
  includeSubunits: "subunits",
  ordering: "ordering",
  authentication: "authentication",
};

// Only what changed goes in the PATCH; an emptied optional filter is sent as null (cleared).
function changesOf(form, s) {
  const body = {};
  if (form.kind === "webhook" && form.endPoint.trim() !== s.endPoint) body.endPoint = form.endPoint.trim();
  if (s.destination) {
    const destination = destinationOf(form);
    if (Object.entries(destination).some(([name, value]) => s.destination[name] !== value)) body.destination = destination;
  }
  if (form.resourceFilter.trim() !== s.resourceFilter) body.resourceFilter = form.resourceFilter.trim();
  for (const name of ["typeFilter", "subjectFilter"]) {
    const value = oneOrMany(form[name]);
    if (!same(value, s[name])) body[name] = value;
  }
  for (const name of ["sourceFilter", "alternativeSubjectFilter"]) {
    const value = form[name].trim() || null;
    if (value !== (s[name] ?? null)) body[name] = value;
  }
  if (form.includeSubunits !== s.includeSubunits) body.includeSubunits = form.includeSubunits;
  if (form.ordering !== s.ordering) body.ordering = form.ordering;
  if (form.kind === "webhook" && form.authType !== "keep") {
    const authentication = authenticationOf(form);
    if (authentication || s.authentication) body.authentication = authentication;
  }
  return body;
}

function EditForm({ subscription, onSaved, onCancel }) {
  const [form, setForm] = useState(() => formOf(subscription));
  const [nothing, setNothing] = useState(false);
  const action = useAction();
  const set = (name) => (value) => {
    setNothing(false);
    setForm((previous) => ({ ...previous, [name]: value }));
  };
  const kind = form.kind;
  const submit = async (event) => {
    event.preventDefault();
    let body = null;
    const done = await action.run(async () => {
      body = changesOf(form, subscription); // unreadable headers are refused here, in words
      if (!Object.keys(body).length) return { nothing: true };
      return patch(path(subscription.id), body);
    });
    if (done?.nothing) {
      setNothing(true);
      return;
    }
    if (done) {
      const changed = Object.keys(body).map((name) => FIELD_NAMES[name] || name);
      const pending = done.data.status === "pending" && ("endPoint" in body || "destination" in body);
      onSaved(done.data, `Saved: changed the ${changed.join(", ")}.${pending ? " The new target is pending until it is validated." : ""}`);
    }
  };
  return html`<form onSubmit=${submit} aria-label="Edit subscription">
    ${kind !== "notification"
      ? html`<${TargetFields} form=${form} set=${set} kinds=${TARGETS.filter(([name]) => name === kind)} />
          <p class="hint">${kind === "webhook"
            ? "A new endpoint URL makes the subscription pending: it receives nothing until the new endpoint accepts a validation event, sent a few seconds after the change. Deliveries already queued wait for that, then go to the new endpoint."
            : "A new destination makes the subscription pending until you send back the code its new validation event carries."}</p>`
      : html`<p class="hint">The notification this subscription orders is changed through the API (PATCH notification).</p>`}
    <${ResourceField} value=${form.resourceFilter} onInput=${set("resourceFilter")} id="edit-resources" />
    <${FilterFields} form=${form} set=${set} />
    ${kind === "webhook" && html`<${AuthenticationFields} form=${form} set=${set} keep=${true} />`}
    ${nothing && html`<${Notice}><p>Nothing changed: there is nothing to save.</p><//>`}
    <${ErrorNotice} error=${action.error} />
    <div class="form-actions">
      <button type="submit" class="primary" disabled=${action.busy}>${action.busy ? "Saving…" : "Save changes"}</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
    </div>
  </form>`;
}

// ---- Health ---------------------------------------------------------------------------------------

const SERIES_CHOICES = [
  ["hourly", "The last 24 hours, by hour"],
  ["recent", "The last hour, by 10 minutes"],
];

function NoPushes() {
  return html`<${Notice}><p>A notification subscription orders an email or SMS for each event instead of pushing it: it has no pushes to report on or backfill. Its orders are under <a href=${href("notifications")}>Notifications</a>.</p><//>`;
}

function Health({ subscription }) {
  if (targetOf(subscription).kind === "notification") return html`<${NoPushes} />`;
  return html`<${HealthOf} subscription=${subscription} />`;
}

function HealthOf({ subscription }) {
  const health = useLoad(async () => (await get(path(subscription.id, "/health"))).data, [subscription.id]);
  const [period, setPeriod] = useState("hourly");
  const data = health.data;
  return html`<section aria-labelledby="health-heading">
    <div class="page-header">
      <h2 id="health-heading">Delivery health</h2>
      <button type="button" class="secondary" onClick=${health.reload} disabled=${health.loading}>${health.loading ? "Refreshing…" : "Refresh"}</button>
    </div>
    <${ErrorNotice} error=${health.error} onRetry=${health.reload} />
    ${!data && health.loading && html`<${Loading} what="Loading the figures" />`}
    ${data && html`<${HealthFigures} data=${data} />
      <h2>Over time</h2>
      <${Field} label="Period" name="period" value=${period} onInput=${setPeriod} options=${SERIES_CHOICES} />
      <${HealthCharts} points=${data[period] || []} period=${period} />`}
  </section>`;
}

function HealthFigures({ data }) {
  const windows = [
    ["Last hour", data.lastHour],
    ["Last 24 hours", data.lastDay],
    ["Last 14 days", data.last14Days],
  ];
  const columns = [
    { title: "Period", cell: (row) => row.name },
    { title: "Delivered", cell: (row) => row.figures.delivered.toLocaleString() },
    { title: "Failed", cell: (row) => row.figures.failed.toLocaleString() },
    { title: "Success rate", cell: (row) => percent(row.figures.successRate) },
    { title: "Latency p50", cell: (row) => millis(row.figures.p50LatencyMs) },
    { title: "Latency p95", cell: (row) => millis(row.figures.p95LatencyMs) },
  ];
  const outcome = (value) =>
    value
      ? html`<${Time} value=${value.at} /><div class="small">${value.statusCode ?? "no answer"} · ${millis(value.latencyMs)} · ${value.outcome}${value.error ? html` · ${value.error}` : null}</div>`
      : html`<span class="muted">none in 14 days</span>`;
  return html`<p class="muted">As of <${Time} value=${data.asOf} />; the newest attempts may take a few seconds to be counted.</p>
    ${data.failingSince && html`<${Notice} kind="warn"><p>Every delivery has failed since <${Time} value=${data.failingSince} />.</p><//>`}
    <${Table} caption="Deliveries per period" columns=${columns} rows=${windows.map(([name, figures]) => ({ name, figures, key: name }))} />
    <div class="figures">
      <div class="figure"><div class="label">Retries waiting</div><div class="value">${data.retriesWaiting.toLocaleString()}</div></div>
      <div class="figure">
        <div class="label">Dead letters</div>
        <div class="value">${data.deadLettersCapped ? "more than " : ""}${data.deadLetters.toLocaleString()}</div>
      </div>
      <div class="figure">
        <div class="label">Circuit</div>
        <div class="value">${data.circuit.state === "open" ? "Open" : "Closed"}</div>
        <div class="small">${data.circuit.state === "open"
          ? html`Pushes are held back since <${Time} value=${data.circuit.openedAt} />`
          : "Pushes flow normally"}</div>
      </div>
      <div class="figure"><div class="label">Last success</div>${outcome(data.lastSuccess)}</div>
      <div class="figure"><div class="label">Last failure</div>${outcome(data.lastFailure)}</div>
    </div>`;
}

function HealthCharts({ points, period }) {
  const by = period === "recent" ? "by 10 minutes, the last hour" : "by hour, the last 24 hours";
  const x = useMemo(() => points.map((point) => point.start), [points]);
  const rate = useMemo(
    () => [{ label: "Success rate", stroke: "#116329", values: points.map((point) => (point.successRate == null ? null : point.successRate * 100)) }],
    [points],
  );
  const latency = useMemo(
    () => [
      { label: "p50 latency", stroke: "#1d4f91", values: points.map((point) => point.p50LatencyMs) },
      { label: "p95 latency", stroke: "#a40e26", dash: [6, 4], values: points.map((point) => point.p95LatencyMs) },
    ],
    [points],
  );
  if (!points.length) return html`<p class="empty">Herald gave no figures over time.</p>`;
  const pct = (value) => `${Number(value).toFixed(Number(value) % 1 ? 1 : 0)} %`;
  return html`<div class="charts">
    <${LineChart} title=${`Success rate, ${by}`} summary=${describe(rate[0].values, pct)} x=${x} series=${rate} format=${pct} range=${[0, 100]} />
    <${LineChart}
      title=${`Latency p50 and p95, ${by}`}
      summary=${`p50 ${describe(latency[0].values, millis)}; p95 ${describe(latency[1].values, millis)}`}
      x=${x}
      series=${latency}
      format=${millis}
    />
  </div>`;
}

// ---- Deliveries -----------------------------------------------------------------------------------

function Excerpt({ text }) {
  if (!text) return html`<span class="muted">–</span>`;
  if (text.length <= 80) return html`<code>${text}</code>`;
  return html`<details><summary>${text.slice(0, 60)}…</summary><pre class="excerpt">${text}</pre></details>`;
}

const attemptKey = (d) => `${d.deliveryId}-${d.attempt}-${d.at}`;

function Deliveries({ subscription }) {
  const list = usePages(
    async (before) => {
      const { data, headers } = await get(path(subscription.id, "/deliveries"), { size: PAGE, before });
      return { items: data.deliveries, headers };
    },
    { cursor: "before", key: attemptKey },
  );
  const columns = [
    { title: "Time", cell: (d) => html`<${Time} value=${d.at} />` },
    { title: "Event", cell: (d) => html`<code>${d.eventId}</code><div class="muted small">webhook-id <code>${d.deliveryId}</code></div>` },
    { title: "Attempt", cell: (d) => d.attempt },
    { title: "Outcome", cell: (d) => html`<${Status} value=${d.outcome} />` },
    { title: "Status code", cell: (d) => d.statusCode ?? html`<span class="muted">no answer</span>` },
    { title: "Latency", cell: (d) => millis(d.latencyMs) },
    { title: "Error", cell: (d) => d.error || html`<span class="muted">–</span>` },
    { title: "Response excerpt", cell: (d) => html`<${Excerpt} text=${d.responseExcerpt} />` },
  ];
  return html`<section aria-labelledby="deliveries-heading">
    <div class="page-header">
      <h2 id="deliveries-heading">Delivery attempts</h2>
      <button type="button" class="secondary" onClick=${list.reload} disabled=${list.loading}>Refresh</button>
    </div>
    <p class="hint">Every attempt of the last 14 days, newest first.</p>
    <${ErrorNotice} error=${list.error} onRetry=${list.retry} />
    ${!list.loaded && list.loading && html`<${Loading} what="Loading deliveries" />`}
    ${list.loaded &&
    html`<${Table}
      caption="Delivery attempts, newest first"
      columns=${columns}
      rows=${list.items.map((d) => ({ ...d, key: attemptKey(d) }))}
      empty="No delivery attempts in the last 14 days."
    />`}
    <div class="pager">
      ${list.cursor && html`<button type="button" class="secondary" onClick=${list.more} disabled=${list.loading}>${list.loading ? "Loading…" : "Load older"}</button>`}
      <span class="muted" role="status">${plural(list.items.length, "attempt")} shown${list.cursor ? ", older ones to load" : ""}</span>
    </div>
  </section>`;
}

// ---- Dead letters ---------------------------------------------------------------------------------

function DeadLetters({ subscription }) {
  const list = usePages(
    async (after) => {
      const { data, headers } = await get(path(subscription.id, "/deadletters"), { size: PAGE, after });
      return { items: data.deadLetters, headers };
    },
    { key: (d) => d.deliveryId },
  );
  const [since, setSince] = useState("");
  const [result, setResult] = useState(null);
  const action = useAction();
  const replay = async (body) => {
    setResult(null);
    const done = await action.run(() => post(path(subscription.id, "/replay"), body));
    if (done) {
      const count = done.data.replayed;
      setResult(
        count === 0
          ? `No dead letters ${body.since ? "since that time " : ""}to replay.`
          : `${plural(count, "dead letter")} queued again with a fresh retry schedule.`,
      );
      list.reload();
    }
  };
  const replaySince = (event) => {
    event.preventDefault();
    replay({ since: instant(since) });
  };
  const columns = [
    { title: "Dead-lettered", cell: (d) => html`<${Time} value=${d.deadAt} />` },
    { title: "Event", cell: (d) => html`<code>${d.eventId}</code><div class="muted small">webhook-id <code>${d.deliveryId}</code></div>` },
    { title: "Attempts", cell: (d) => d.attempts },
    { title: "First attempt", cell: (d) => html`<${Time} value=${d.firstAttemptAt} />` },
    { title: "Last status code", cell: (d) => d.lastStatus ?? html`<span class="muted">no answer</span>` },
    { title: "Last error", cell: (d) => d.lastError || html`<span class="muted">–</span>` },
  ];
  return html`<section aria-labelledby="dead-heading">
    <div class="page-header">
      <h2 id="dead-heading">Dead letters</h2>
      <button type="button" class="secondary" onClick=${list.reload} disabled=${list.loading}>Refresh</button>
    </div>
    <p class="hint">Deliveries that failed through the whole retry schedule. A replay delivers them again, with a fresh schedule.</p>
    <div class="form-actions">
      <button type="button" class="primary" onClick=${() => replay({})} disabled=${action.busy}>Replay all</button>
    </div>
    <form onSubmit=${replaySince} aria-label="Replay dead letters since a time" class="inline-form">
      <${Field} label="Dead-lettered since (your time zone)" name="since" type="datetime-local" value=${since} onInput=${setSince} required />
      <button type="submit" class="secondary" disabled=${action.busy}>Replay since</button>
    </form>
    <${ErrorNotice} error=${action.error} />
    ${result && html`<${Notice} kind="ok"><p>${result}</p><//>`}
    <${ErrorNotice} error=${list.error} onRetry=${list.retry} />
    ${!list.loaded && list.loading && html`<${Loading} what="Loading dead letters" />`}
    ${list.loaded &&
    html`<${Table}
      caption="Dead letters"
      columns=${columns}
      rows=${list.items.map((d) => ({ ...d, key: d.deliveryId }))}
      empty="No dead letters: every delivery was delivered or is still being retried."
    />`}
    <div class="pager">
      ${list.cursor && html`<button type="button" class="secondary" onClick=${list.more} disabled=${list.loading}>${list.loading ? "Loading…" : "Load more"}</button>`}
      <span class="muted" role="status">${plural(list.items.length, "dead letter")} shown</span>
    </div>
  </section>`;
}

// ---- Backfill -------------------------------------------------------------------------------------

function Backfill({ subscription, route }) {
  if (targetOf(subscription).kind === "notification") return html`<${NoPushes} />`;
  return html`<${BackfillOf} subscription=${subscription} route=${route} />`;
}

function BackfillOf({ subscription, route }) {
  const shownId = route.query.get("backfill");
  const [form, setForm] = useState({ from: "", to: "" });
  const [running, setRunning] = useState(null); // the id of a backfill another start found scanning
  const action = useAction();
  const set = (name) => (value) => setForm((previous) => ({ ...previous, [name]: value }));
  const start = async (event) => {
    event.preventDefault();
    setRunning(null);
    const body = { from: instant(form.from) };
    if (form.to) body.to = instant(form.to);
    const done = await action.run(async () => {
      try {
        return await post(path(subscription.id, "/backfill"), body);
      } catch (error) {
        if (error instanceof ApiError && error.problem.backfill) setRunning(error.problem.backfill);
        throw error;
      }
    });
    if (done) setQuery({ backfill: done.data.id });
  };
  return html`<section aria-labelledby="backfill-heading">
    <h2 id="backfill-heading">Backfill</h2>
    <p class="hint">Pushes the stored events of a time range that match the filters, in log order, as their live pushes were (the same webhook-id, so your receiver drops what it already has). Times are when Herald stored the events.</p>
    ${subscription.status !== "active" && html`<${Notice} kind="warn"><p>The subscription is ${subscription.status}: a backfill needs it active.</p><//>`}
    <form onSubmit=${start} aria-label="Start a backfill">
      <div class="filters">
        <${Field} label="From (your time zone)" name="from" type="datetime-local" value=${form.from} onInput=${set("from")} required />
        <${Field} label="To (your time zone)" name="to" type="datetime-local" value=${form.to} onInput=${set("to")} hint="Empty: up to the events stored now." />
      </div>
      <${ErrorNotice} error=${action.error} actions=${{ 409: "A backfill needs an active subscription, and one at a time: wait for the running one to finish or cancel it." }} />
      ${running && html`<p><a href=${href("subscriptions", subscription.id, { tab: "backfill", backfill: running })}>Show the backfill that is running</a></p>`}
      <div class="form-actions"><button type="submit" class="primary" disabled=${action.busy}>${action.busy ? "Starting…" : "Start backfill"}</button></div>
    </form>
    ${shownId && html`<${BackfillProgress} key=${shownId} subscription=${subscription} id=${shownId} />`}
  </section>`;
}

// The backfill's progress in one sentence.
function progressOf(b) {
  const scan = b.scanComplete ? "every event of the range was read" : `reading the range, ${plural(b.scanned, "event")} so far`;
  const pushed = `${plural(b.pushed, "push", "pushes")} accepted of ${plural(b.matched, "matching event")}`;
  return `${scan}; ${pushed}.${b.reason ? ` ${b.reason}.` : ""}`;
}

function BackfillProgress({ subscription, id }) {
  const [backfill, setBackfill] = useState(null);
  const [error, setError] = useState(null);
  const [confirm, setConfirm] = useState(false);
  const action = useAction();
  const url = path(subscription.id, `/backfills/${encodeURIComponent(id)}`);
  const running = !backfill || backfill.state === "running";

  // Every second while it runs; an error (gone, signed out, Herald failing) stops it until Try again.
  usePoll(
    async (signal) => {
      try {
        const { data } = await get(url, undefined, signal);
        if (!signal.aborted) setBackfill(data);
      } catch (failure) {
        if (!signal.aborted) setError(failure);
      }
    },
    BACKFILL_POLL_MS,
    running && !error,
  );

  const cancel = async () => {
    const done = await action.run(() => post(`${url}/cancel`));
    if (done) {
      setBackfill(done.data);
      setConfirm(false);
    }
  };
  const b = backfill;
  return html`<section aria-labelledby="progress-heading">
    <h3 id="progress-heading">Backfill <code>${id}</code></h3>
    <${ErrorNotice} error=${error} quiet onRetry=${() => setError(null)} />
    ${!b && !error && html`<${Loading} what="Loading the backfill" />`}
    ${b &&
    html`<p aria-live="polite"><${Status} value=${b.state} /> ${progressOf(b)}</p>
      <div class="figures">
        ${[
          ["Scanned", b.scanned, "events of the range read"],
          ["Matched", b.matched, "queued for pushing"],
          ["Not allowed", b.unauthorized, "match, but you may not receive them"],
          ["Pushed", b.pushed, "accepted by the endpoint"],
          ["Failed", b.failed, "dead-lettered, refused or not allowed at push time"],
          ["Dropped", b.dropped, "cancelled, or the subscription or event is gone"],
        ].map(
          ([label, value, hint]) => html`<div class="figure"><div class="label">${label}</div><div class="value">${value.toLocaleString()}</div><div class="small muted">${hint}</div></div>`,
        )}
      </div>
      <dl class="facts">
        <dt>Started</dt><dd><${Time} value=${b.created} /></dd>
        <dt>Last step</dt><dd><${Time} value=${b.updated} /></dd>
        <dt>Range (read cursors)</dt><dd><code>${b.from}</code> to <code>${b.to}</code></dd>
      </dl>
      ${b.state === "running" && html`<div class="form-actions"><button type="button" class="danger" onClick=${() => setConfirm(true)}>Cancel backfill</button></div>`}`}
    <${Dialog} title="Cancel this backfill?" open=${confirm} onClose=${() => setConfirm(false)}>
      <p>It stops reading the range, and its deliveries not yet pushed are dropped. Pushes already made stay made.</p>
      <${ErrorNotice} error=${action.error} />
      <div class="form-actions">
        <button type="button" class="danger" onClick=${cancel} disabled=${action.busy}>Yes, cancel the backfill</button>
        <button type="button" class="secondary" onClick=${() => setConfirm(false)}>Keep it running</button>
      </div>
    <//>
  </section>`;
}
