// Subscriptions: the caller's subscriptions one page at a time, and a form for a new one. After a
// create the secret is shown once and the validation handshake is followed until the subscription
// is active (or disabled, with the reason). The pieces the detail page shares are exported here.
import { ApiError, get, post } from "../lib/api.js";
import { href, setQuery } from "../lib/router.js";
import {
  Copy,
  ErrorNotice,
  Field,
  html,
  listOf,
  Notice,
  Page,
  Status,
  Table,
  textOf,
  Time,
  useAction,
  useEffect,
  usePages,
  usePoll,
  useRef,
  useResources,
  useState,
} from "../lib/ui.js";

const PAGE = 50;
const POLL_MS = 1000;
// A webhook's validation event goes out a few seconds after the create; past a minute the endpoint is
// being retried on the delivery schedule, which the person need not sit and watch.
const HANDSHAKE_WATCH_MS = 60_000;

export const TARGETS = [
  ["webhook", "Webhook (an endpoint URL)"],
  ["eventGridTopic", "Azure Event Grid topic"],
  ["serviceBusQueue", "Azure Service Bus queue"],
  ["serviceBusTopic", "Azure Service Bus topic"],
];

const DESTINATION_NAMES = {
  eventGridTopic: "Event Grid topic",
  serviceBusQueue: "Service Bus queue",
  serviceBusTopic: "Service Bus topic",
};

// Where a subscription's events go, in a few words.
export function targetOf(subscription) {
  const destination = subscription.destination;
  if (destination) {
    const where = destination.topicEndpoint || `${destination.namespace}/${destination.name}`;
    return { kind: destination.type, label: DESTINATION_NAMES[destination.type] || destination.type, where };
  }
  if (subscription.notification) {
    return { kind: "notification", label: "Notification", where: `${subscription.notification.notificationChannel || "email/SMS"} to the event's subject` };
  }
  return { kind: "webhook", label: "Webhook", where: subscription.endPoint };
}

export function filtersOf(subscription) {
  const parts = [];
  if (subscription.typeFilter) parts.push(["Type", textOf(subscription.typeFilter)]);
  if (subscription.subjectFilter) parts.push(["Subject", textOf(subscription.subjectFilter)]);
  if (subscription.alternativeSubjectFilter) parts.push(["Alternative subject", subscription.alternativeSubjectFilter]);
  if (subscription.sourceFilter) parts.push(["Source", subscription.sourceFilter]);
  if (subscription.includeSubunits) parts.push(["Subunits", "included"]);
  return parts;
}

function FilterSummary({ subscription }) {
  const parts = filtersOf(subscription);
  if (!parts.length) return html`<span class="muted">every event</span>`;
  return html`<ul class="plain">${parts.map(([name, value]) => html`<li><span class="muted">${name}:</span> <code>${value}</code></li>`)}</ul>`;
}

// The resources the caller may subscribe to, offered while typing (any URN may still be typed).
export function ResourceField({ value, onInput, id = "subscription-resources" }) {
  const resources = useResources();
  const names = (resources.data || []).filter((item) => item.subscribe !== "none").map((item) => item.resource);
  return html`<div>
    <${Field}
      label="Resource"
      name="resourceFilter"
      hint=${resources.error ? "Type the resource's URN." : "A resource you may subscribe to; you can also type a URN."}
      value=${value}
      onInput=${onInput}
      list=${id}
      required
      autocomplete="off"
      placeholder="urn:altinn:resource:example"
    />
    <datalist id=${id}>${names.map((name) => html`<option value=${name} />`)}</datalist>
  </div>`;
}

// "Name: value" lines into a header object; null when there are none.
export function headersOf(text) {
  const headers = {};
  for (const line of String(text || "").split("\n")) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon < 1) {
      const detail = `"${line.trim().slice(0, 40)}" is not a header: write one per line as Name: value.`;
      throw new ApiError(400, { title: "The headers cannot be read", detail });
    }
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return Object.keys(headers).length ? headers : null;
}

// The target fields (kind, URL or broker) shared by the create form and the edit dialog.
export function TargetFields({ form, set, kinds = TARGETS }) {
  return html`${kinds.length > 1
      ? html`<${Field} label="Deliver to" name="kind" value=${form.kind} onInput=${set("kind")} options=${kinds} />`
      : null}
    ${form.kind === "webhook" &&
    html`<${Field}
      label="Endpoint URL"
      name="endPoint"
      type="url"
      value=${form.endPoint}
      onInput=${set("endPoint")}
      required
      placeholder="https://example.com/herald/webhook"
      hint="Herald POSTs each matching event here, signed. It must accept a validation event first."
    />`}
    ${form.kind === "eventGridTopic" &&
    html`<${Field}
      label="Topic endpoint"
      name="topicEndpoint"
      type="url"
      value=${form.topicEndpoint}
      onInput=${set("topicEndpoint")}
      required
      placeholder="https://my-topic.westeurope-1.eventgrid.azure.net/api/events"
      hint="Herald's managed identity needs the role EventGrid Data Sender on the topic."
    />`}
    ${(form.kind === "serviceBusQueue" || form.kind === "serviceBusTopic") &&
    html`<div class="filters">
      <${Field}
        label="Namespace"
        name="namespace"
        value=${form.namespace}
        onInput=${set("namespace")}
        required
        placeholder="my-namespace.servicebus.windows.net"
        hint="Herald's managed identity needs Azure Service Bus Data Sender on it."
      />
      <${Field}
        label=${form.kind === "serviceBusQueue" ? "Queue name" : "Topic name"}
        name="name"
        value=${form.name}
        onInput=${set("name")}
        required
      />
    </div>`}`;
}

export function destinationOf(form) {
  if (form.kind === "eventGridTopic") return { type: "eventGridTopic", topicEndpoint: form.topicEndpoint.trim() };
  return { type: form.kind, namespace: form.namespace.trim(), name: form.name.trim() };
}

export function AuthenticationFields({ form, set, keep = false }) {
  const options = [
    ...(keep ? [["keep", "Keep as it is"]] : []),
    ["none", "None: the signature only"],
    ["entraToken", "A bearer token as Herald (Microsoft Entra ID)"],
    ["headers", "Custom headers"],
  ];
  return html`<fieldset>
    <legend>Endpoint authentication (optional)</legend>
    <p class="hint">What a gateway in front of your endpoint asks for, besides Herald's signature.</p>
    <${Field} label="Authentication" name="authType" value=${form.authType} onInput=${set("authType")} options=${options} />
    ${form.authType === "entraToken" &&
    html`<${Field}
      label="Token audience"
      name="audience"
      value=${form.audience}
      onInput=${set("audience")}
      required
      placeholder="api://example.com/herald"
      hint="The application ID URI of the API behind the gateway, on the endpoint's own host (https:// or api://)."
    />`}
    ${form.authType === "headers" &&
    html`<${Field}
      label="Headers"
      name="headers"
      rows="3"
      value=${form.headers}
      onInput=${set("headers")}
      required
      placeholder="X-Api-Key: …"
      hint="One per line as Name: value, up to 5. The values are kept sealed and never shown again."
    />`}
  </fieldset>`;
}

export function authenticationOf(form) {
  if (form.authType === "entraToken") return { type: "entraToken", audience: form.audience.trim() };
  if (form.authType === "headers") return { type: "headers", headers: headersOf(form.headers) };
  return null;
}

// The signing secret, shown this once.
export function SecretOnce({ secret, what = "The signing secret" }) {
  if (!secret) return null;
  return html`<div class="notice notice-warn" role="status">
    <p class="notice-title">${what}: store it now, it is not shown again</p>
    <p>Your receiver verifies each push's webhook-signature with it. Herald keeps only a sealed copy and cannot show it to anyone later; if it is lost, rotate the secret.</p>
    <p><code class="secret" aria-label="Signing secret">${secret}</code></p>
    <${Copy} text=${secret} label="Copy the secret" />
  </div>`;
}

function stepsOf(subscription) {
  const destination = Boolean(subscription.destination);
  const { status } = subscription;
  const steps = [{ text: "Created", state: "done" }];
  if (destination) {
    steps.push({ text: "Validation event published to the destination, with a one-time code", state: status === "pending" ? "current" : "done" });
    steps.push({ text: "You send the code back (below)", state: status === "active" ? "done" : status === "disabled" ? "failed" : "waiting" });
  } else {
    // Herald does not report the send itself: while pending it is on its way, or being retried.
    steps.push({
      text: "Validation event (platform.events.validatesubscription) sent to the endpoint, a few seconds after the change",
      state: status === "pending" ? "current" : "done",
    });
    steps.push({
      text: "The endpoint accepted it (answered 2xx)",
      state: status === "active" ? "done" : status === "disabled" ? "failed" : "waiting",
    });
  }
  steps.push({ text: "Active: matching events are pushed", state: status === "active" ? "done" : status === "disabled" ? "failed" : "waiting" });
  return steps;
}

const STEP_WORDS = { done: "done", current: "in progress", waiting: "not yet", failed: "did not happen" };

// The validation handshake as it happens: polls the subscription every second while it is pending.
export function Handshake({ subscription, onChange, since }) {
  const [watching, setWatching] = useState(subscription.status === "pending");
  const [error, setError] = useState(null);
  const started = useRef(since || Date.now());
  const pending = subscription.status === "pending";

  // Stops when the subscription is no longer pending, after a minute, or on an error (Try again).
  usePoll(
    async (signal) => {
      if (Date.now() - started.current > HANDSHAKE_WATCH_MS) {
        setWatching(false);
        return;
      }
      try {
        const { data } = await get(`subscriptions/${encodeURIComponent(subscription.id)}`, undefined, signal);
        if (!signal.aborted) onChange(data);
      } catch (failure) {
        if (!signal.aborted) setError(failure);
      }
    },
    POLL_MS,
    watching && pending && !error,
  );

  const again = () => {
    started.current = Date.now();
    setError(null);
    setWatching(true);
  };
  const steps = stepsOf(subscription);
  const destination = Boolean(subscription.destination);
  return html`<section class="handshake" aria-labelledby="handshake-heading">
    <h2 id="handshake-heading">Validation</h2>
    <ol class="steps">
      ${steps.map(
        (step) => html`<li class=${step.state} aria-current=${step.state === "current" ? "step" : undefined}>
          ${step.text} <span class="visually-hidden">(${STEP_WORDS[step.state]})</span>
        </li>`,
      )}
    </ol>
    <p aria-live="polite">
      ${subscription.status === "active" && "The subscription is active: matching events are pushed from now on."}
      ${subscription.status === "disabled" &&
      html`The subscription is disabled: ${subscription.disabledReason || "the endpoint did not accept the validation event"}. Fix the endpoint, then enable it again.`}
      ${pending && watching && !destination && "Waiting for the endpoint to accept the validation event…"}
      ${pending && watching && destination && "Waiting for the validation code: read the validation event from your destination."}
    </p>
    ${pending && !watching &&
    html`<${Notice} kind="warn">
      <p>Still pending after a minute. ${destination
        ? "Send back the validation code the event carried; if it never arrived, check Herald's role on the destination."
        : "Herald retries the validation event on its retry schedule; check that the endpoint answers 2xx to a POST of it."}</p>
      <button type="button" class="secondary" onClick=${again}>Check again</button>
    <//>`}
    <${ErrorNotice} error=${error} quiet onRetry=${again} />
    ${pending && destination && html`<${ValidationCode} subscription=${subscription} onChange=${onChange} />`}
  </section>`;
}

// A destination is validated by sending back the code its validation event carried.
export function ValidationCode({ subscription, onChange }) {
  const [code, setCode] = useState("");
  const action = useAction();
  const submit = async (event) => {
    event.preventDefault();
    const done = await action.run(() => post(`subscriptions/${encodeURIComponent(subscription.id)}/validate`, { validationCode: code.trim() }));
    if (done) {
      setCode("");
      onChange(done.data);
    }
  };
  return html`<form onSubmit=${submit} aria-label="Send the validation code">
    <${Field}
      label="Validation code"
      name="validationCode"
      value=${code}
      onInput=${setCode}
      required
      autocomplete="off"
      hint="The data.validationCode of the platform.events.validatesubscription event Herald published to your destination."
    />
    <${ErrorNotice} error=${action.error} actions=${{ 409: "It is not waiting for a code now: its status above says why." }} />
    <div class="form-actions"><button type="submit" class="primary" disabled=${action.busy}>${action.busy ? "Validating…" : "Validate"}</button></div>
  </form>`;
}

const EMPTY = {
  kind: "webhook",
  endPoint: "",
  topicEndpoint: "",
  namespace: "",
  name: "",
  resourceFilter: "",
  subjectFilter: "",
  typeFilter: "",
  sourceFilter: "",
  alternativeSubjectFilter: "",
  includeSubunits: false,
  ordering: "none",
  authType: "none",
  audience: "",
  headers: "",
};

// One value or a list, as the API takes it.
export function oneOrMany(text) {
  const items = listOf(text);
  return items && items.length === 1 ? items[0] : items;
}

function requestOf(form) {
  const body = { resourceFilter: form.resourceFilter.trim(), includeSubunits: form.includeSubunits, ordering: form.ordering };
  if (form.kind === "webhook") {
    body.endPoint = form.endPoint.trim();
    const authentication = authenticationOf(form);
    if (authentication) body.authentication = authentication;
  } else body.destination = destinationOf(form);
  const subject = oneOrMany(form.subjectFilter);
  const type = oneOrMany(form.typeFilter);
  if (subject) body.subjectFilter = subject;
  if (type) body.typeFilter = type;
  if (form.sourceFilter.trim()) body.sourceFilter = form.sourceFilter.trim();
  if (form.alternativeSubjectFilter.trim()) body.alternativeSubjectFilter = form.alternativeSubjectFilter.trim();
  return body;
}

export function FilterFields({ form, set }) {
  return html`<fieldset>
    <legend>Filters (optional: an empty filter matches every event)</legend>
    <div class="filters">
      <${Field}
        label="Type filter"
        name="typeFilter"
        rows="2"
        value=${form.typeFilter}
        onInput=${set("typeFilter")}
        placeholder="no.example.case.*"
        hint="Exact, or a prefix ending in *. Several: one per line or comma-separated; any matches."
      />
      <${Field}
        label="Subject filter"
        name="subjectFilter"
        rows="2"
        value=${form.subjectFilter}
        onInput=${set("subjectFilter")}
        placeholder="org:123456789"
        hint="Exact. Several: one per line or comma-separated; any matches."
      />
      <${Field} label="Source filter" name="sourceFilter" value=${form.sourceFilter} onInput=${set("sourceFilter")} hint="Exact, or a prefix ending in *." />
      <${Field}
        label="Alternative subject filter"
        name="alternativeSubjectFilter"
        value=${form.alternativeSubjectFilter}
        onInput=${set("alternativeSubjectFilter")}
        hint="Exact."
      />
    </div>
    <${Field}
      type="checkbox"
      label="Include subunits"
      name="includeSubunits"
      value=${form.includeSubunits}
      onInput=${set("includeSubunits")}
      hint="With a subject filter of organisations (org:<9 digits>), events about their subunits match too."
    />
    <${Field}
      label="Ordering"
      name="ordering"
      value=${form.ordering}
      onInput=${set("ordering")}
      options=${[
        ["none", "None: as fast as they come"],
        ["subject", "By subject: one subject's events in log order"],
      ]}
      hint="By subject: each event of a subject is pushed after the previous one was delivered or dead-lettered."
    />
  </fieldset>`;
}

function NewSubscription({ onCreated, onCancel }) {
  const [form, setForm] = useState(EMPTY);
  const action = useAction();
  const set = (name) => (value) => setForm((previous) => ({ ...previous, [name]: value }));
  const first = useRef(null);
  useEffect(() => first.current?.querySelector("select, input")?.focus(), []);
  const submit = async (event) => {
    event.preventDefault();
    const done = await action.run(async () => {
      const { data, status } = await post("subscriptions", requestOf(form));
      return { data, existed: status === 200 };
    });
    if (done) onCreated(done.data, done.existed, Date.now());
  };
  return html`<section aria-labelledby="new-heading" ref=${first}>
    <h2 id="new-heading">New subscription</h2>
    <form onSubmit=${submit} aria-label="New subscription">
      <${TargetFields} form=${form} set=${set} />
      <${ResourceField} value=${form.resourceFilter} onInput=${set("resourceFilter")} />
      <${FilterFields} form=${form} set=${set} />
      ${form.kind === "webhook" && html`<${AuthenticationFields} form=${form} set=${set} />`}
      <${ErrorNotice} error=${action.error} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled=${action.busy}>${action.busy ? "Creating…" : "Create subscription"}</button>
        <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
      </div>
    </form>
  </section>`;
}

function Created({ created, onChange, onClose }) {
  const { subscription, existed, at } = created;
  const heading = useRef(null);
  useEffect(() => heading.current?.focus(), [subscription.id]); // the form it replaces had the focus
  return html`<section aria-labelledby="created-heading" class="created">
    <h2 id="created-heading" tabindex="-1" ref=${heading}>${existed ? "This subscription exists already" : "Subscription created"}</h2>
    ${existed
      ? html`<${Notice}><p>An identical subscription of yours exists: nothing new was created, and its secret is not shown again. Rotate the secret if you no longer have it.</p><//>`
      : html`<${SecretOnce} secret=${subscription.secret} />`}
    <p>
      <a href=${href("subscriptions", subscription.id)}>Open ${subscription.id}</a>
      <span class="muted"> · ${targetOf(subscription).where}</span>
    </p>
    <${Handshake} subscription=${subscription} onChange=${onChange} since=${at} />
    <div class="form-actions"><button type="button" class="secondary" onClick=${onClose}>Done</button></div>
  </section>`;
}

export function SubscriptionsPage({ route }) {
  const creating = route.query.get("new") === "1";
  const [created, setCreated] = useState(null);
  // A subscription just created is put first; the page it comes in later leaves it out (same id).
  const list = usePages(async (after) => {
    const { data, headers } = await get("subscriptions", { size: PAGE, after });
    return { items: data.subscriptions, headers };
  });
  const items = list.items;
  const cursor = list.cursor;

  const onCreated = (subscription, existed, at) => {
    setQuery({ new: "" });
    setCreated({ subscription, existed, at });
    const { secret: _, ...shown } = subscription;
    list.update((previous) => [shown, ...previous.filter((item) => item.id !== subscription.id)]);
  };
  const onChange = (subscription) => {
    setCreated((previous) => previous && { ...previous, subscription: { ...subscription, secret: previous.subscription.secret } });
    list.update((previous) => previous.map((item) => (item.id === subscription.id ? subscription : item)));
  };

  const columns = [
    {
      title: "Target",
      cell: (s) => {
        const target = targetOf(s);
        return html`<a href=${href("subscriptions", s.id)}><code>${target.where}</code></a>
          <div class="muted small">${target.label} · ${s.id}</div>`;
      },
    },
    { title: "Resource", cell: (s) => html`<code>${s.resourceFilter}</code>` },
    { title: "Filters", cell: (s) => html`<${FilterSummary} subscription=${s} />` },
    { title: "Status", cell: (s) => html`<${Status} value=${s.status} />` },
    { title: "Created", cell: (s) => html`<${Time} value=${s.created} />` },
  ];

  const actions = !creating && html`<button type="button" class="primary" onClick=${() => { setCreated(null); setQuery({ new: "1" }); }}>New subscription</button>`;
  return html`<${Page} title="Subscriptions" actions=${actions}>
    ${creating && html`<${NewSubscription} onCreated=${onCreated} onCancel=${() => setQuery({ new: "" })} />`}
    ${created && html`<${Created} created=${created} onChange=${onChange} onClose=${() => setCreated(null)} />`}
    <section aria-labelledby="list-heading">
      <h2 id="list-heading">Your subscriptions</h2>
      <${ErrorNotice} error=${list.error} onRetry=${list.retry} />
      ${list.loading && !list.loaded ? html`<p class="loading" role="status">Loading subscriptions…</p>` : null}
      ${list.loaded &&
      html`<${Table}
        caption="Your subscriptions"
        columns=${columns}
        rows=${items.map((s) => ({ ...s, key: s.id }))}
        empty="You have no subscriptions yet. Create one with New subscription."
      />`}
      <div class="pager">
        ${cursor &&
        html`<button type="button" class="secondary" disabled=${list.loading} onClick=${list.more}>${list.loading ? "Loading…" : "Load more"}</button>`}
        <span class="muted" role="status">${items.length} subscription${items.length === 1 ? "" : "s"} shown${cursor ? ", more to load" : ""}</span>
      </div>
    </section>
  <//>`;
}
