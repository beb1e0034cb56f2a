// Notifications: the person's orders (newest first), a form for a new email/SMS order, and each
// order followed to the end: every recipient's status and the steps it went through.
import { ApiError, get, post } from "../lib/api.js";
import { go, href, setQuery } from "../lib/router.js";
import {
  Confirm,
  ErrorNotice,
  Field,
  html,
  listOf,
  Loading,
  localInput,
  Notice,
  Page,
  Status,
  Table,
  Time,
  useAction,
  useLoad,
  usePages,
  usePoll,
  useRef,
  useState,
} from "../lib/ui.js";

const PAGE = 25;
const REFRESH_EVERY_MS = 2000;
const SCHEDULED_AHEAD_MS = 60_000; // an order due later than this is not polled: nothing can change before then

const CHANNELS = [
  ["Email", "Email"],
  ["Sms", "SMS"],
  ["EmailPreferred", "Email, or SMS to a recipient without an email address"],
  ["SmsPreferred", "SMS, or email to a recipient without a mobile number"],
  ["EmailAndSms", "Both email and SMS"],
];
const CHANNEL_NAMES = Object.fromEntries(CHANNELS.map(([value, words]) => [value, words.split(",")[0]]));

// Statuses a notification leaves again; every other one is final (docs/notifications.md, status machine).
const PASSING = new Set(["New", "Sending", "Succeeded", "Accepted"]);
const ORDER_FINAL = new Set(["Completed", "Cancelled", "SendConditionNotMet"]);

export const notificationFinal = (status) => !PASSING.has(status);

// ---------------------------------------------------------------------------------------------
// Which order a notification belongs to, remembered in this tab for the outbox's links (the sink's
// captured messages name their notification, not their order).

const ORDERS_KEY = "herald.notificationOrders";

function remembered() {
  try {
    return JSON.parse(sessionStorage.getItem(ORDERS_KEY) || "{}");
  } catch {
    return {};
  }
}

export function rememberNotifications(orderId, notifications) {
  const known = remembered();
  let changed = false;
  for (const notification of notifications || []) {
    if (known[notification.id] !== orderId) {
      known[notification.id] = orderId;
      changed = true;
    }
  }
  if (!changed) return;
  const entries = Object.entries(known);
  try {
    sessionStorage.setItem(ORDERS_KEY, JSON.stringify(Object.fromEntries(entries.slice(-5000))));
  } catch {
    // Storage full or refused: the outbox then shows notification ids without links.
  }
}

export function orderOfNotification(notificationId) {
  return remembered()[notificationId] || null;
}

// ---------------------------------------------------------------------------------------------

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Recipients one per line; commas and semicolons (an address book's copy) separate them too.
const lines = (text) => listOf(text, /[\n,;]/) || [];

const compact = (text) => text.replace(/[\s.-]/g, "");

const RECIPIENT_KINDS = [
  { field: "emails", key: "emailAddress", label: "Email addresses", clean: (v) => v, hint: "One per line." },
  {
    field: "mobiles",
    key: "mobileNumber",
    label: "Mobile numbers",
    clean: (v) => {
      const number = v.replace(/[\s()-]/g, "");
      return number.startsWith("00") ? `+${number.slice(2)}` : number;
    },
    hint: "One per line, with the country code (+4799999999).",
  },
  {
    field: "nins",
    key: "nationalIdentityNumber",
    label: "National identity numbers",
    clean: compact,
    hint: "One per line, 11 digits: Herald looks up the person's contact details and reservation.",
  },
  {
    field: "orgs",
    key: "organizationNumber",
    label: "Organisation numbers",
    clean: compact,
    hint: "One per line, 9 digits: Herald sends to the organisation's notification addresses.",
  },
];

function recipientsOf(form) {
  const recipients = [];
  for (const kind of RECIPIENT_KINDS) for (const value of lines(form[kind.field])) recipients.push({ [kind.key]: kind.clean(value) });
  return recipients;
}

// GSM-7's basic and extension characters: any other character makes an SMS UCS-2 (70 a segment).
const GSM =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION = "^{}\\[~]|€\f";

export function smsSegments(text) {
  let septets = 0;
  let gsm = true;
  for (const char of text) {
    if (GSM.includes(char)) septets += 1;
    else if (GSM_EXTENSION.includes(char)) septets += 2;
    else gsm = false;
  }
  if (gsm) return { encoding: "GSM-7", length: septets, segments: septets <= 160 ? 1 : Math.ceil(septets / 153) };
  const units = text.length; // UTF-16 code units
  return { encoding: "UCS-2", length: units, segments: units <= 70 ? 1 : Math.ceil(units / 67) };
}

// Herald names a field by its JSON path (recipients.3.mobileNumber); the person sees the form.
function wordsForLocation(location, recipients) {
  const path = String(location || "").replace(/^body\./, "");
  const named = {
    idempotencyId: "Order id",
    sendersReference: "Sender's reference",
    requestedSendTime: "Send time",
    notificationChannel: "Channel",
    emailTemplate: "Email",
    "emailTemplate.subject": "Subject",
    "emailTemplate.body": "Body",
    "emailTemplate.contentType": "Content type",
    "emailTemplate.fromAddress": "From address",
    smsTemplate: "SMS",
    "smsTemplate.body": "SMS text",
    "smsTemplate.senderNumber": "SMS sender",
    recipients: "Recipients",
    resourceId: "Resource",
    conditionEndpoint: "Condition endpoint",
    sendingTimePolicy: "Sending time",
  };
  if (named[path]) return named[path];
  const match = /^recipients\.(\d+)/.exec(path);
  if (match) {
    const recipient = recipients[Number(match[1])];
    const value = recipient ? Object.values(recipient)[0] : null;
    return value ? `Recipient ${value}` : `Recipient ${Number(match[1]) + 1}`;
  }
  return path;
}

const EMPTY_FORM = {
  channel: "Email",
  emails: "",
  mobiles: "",
  nins: "",
  orgs: "",
  subject: "",
  body: "",
  contentType: "Plain",
  fromAddress: "",
  smsBody: "",
  senderNumber: "",
  reference: "",
  sendAt: "",
  resourceId: "",
  ignoreReservation: false,
  sendingTimePolicy: "",
  conditionEndpoint: "",
};

function orderBody(form, idempotencyId) {
  const body = {
    idempotencyId,
    notificationChannel: form.channel,
    recipients: recipientsOf(form),
    ignoreReservation: Boolean(form.ignoreReservation),
  };
  if (form.channel !== "Sms") {
    body.emailTemplate = { subject: form.subject, body: form.body, contentType: form.contentType };
    if (form.fromAddress.trim()) body.emailTemplate.fromAddress = form.fromAddress.trim();
  }
  if (form.channel !== "Email") {
    body.smsTemplate = { body: form.smsBody };
    if (form.senderNumber.trim()) body.smsTemplate.senderNumber = form.senderNumber.trim();
  }
  if (form.reference.trim()) body.sendersReference = form.reference.trim();
  if (form.sendAt) body.requestedSendTime = new Date(form.sendAt).toISOString();
  if (form.resourceId.trim()) body.resourceId = form.resourceId.trim();
  if (form.sendingTimePolicy) body.sendingTimePolicy = form.sendingTimePolicy;
  if (form.conditionEndpoint.trim()) body.conditionEndpoint = form.conditionEndpoint.trim();
  return body;
}

function NewOrder({ onClose }) {
  const [form, setForm] = useState(EMPTY_FORM);
  const action = useAction();
  // An order that got no answer (network, 5xx) is sent again with the same idempotencyId, so a
  // retry can never order twice; any other submit is a new order with a fresh one.
  const retry = useRef(null);
  const set = (name) => (value) => {
    retry.current = null;
    setForm((previous) => ({ ...previous, [name]: value }));
  };
  const email = form.channel !== "Sms";
  const sms = form.channel !== "Email";
  const count = recipientsOf(form).length;
  const length = smsSegments(form.smsBody);

  const submit = async (event) => {
    event.preventDefault();
    const idempotencyId = retry.current || uuid();
    const body = orderBody(form, idempotencyId);
    const result = await action.run(async () => {
      if (!body.recipients.length) {
        throw new ApiError(400, {
          title: "No recipients",
          detail: "The order names nobody to send to.",
          errors: [{ location: "Recipients", detail: "give at least one email address, mobile number, national identity number or organisation number" }],
        });
      }
      try {
        return (await post("notifications/orders", body)).data;
      } catch (error) {
        if (error instanceof ApiError && (error.status === 0 || error.status >= 500)) retry.current = idempotencyId;
        if (error instanceof ApiError && Array.isArray(error.problem.errors)) {
          error.problem.errors = error.problem.errors.map((item) => ({ ...item, location: wordsForLocation(item.location, body.recipients) }));
          error.problem.detail = "Nothing was ordered.";
        }
        throw error;
      }
    });
    if (!result) return;
    retry.current = null;
    try {
      if (result.recipientLookup) sessionStorage.setItem(`herald.lookup.${result.orderId}`, JSON.stringify(result.recipientLookup));
    } catch {
      // Only a notice on the order page is lost.
    }
    go("notifications", result.orderId);
  };

  return html`<section class="panel" aria-labelledby="new-order-heading">
    <h2 id="new-order-heading">New order</h2>
    <form onSubmit=${submit} aria-labelledby="new-order-heading" novalidate>
      <${Field}
        label="Channel"
        name="channel"
        value=${form.channel}
        onInput=${set("channel")}
        options=${CHANNELS}
        hint="How each recipient is reached. Preferred channels fall back to the other one per recipient."
      />
      <fieldset>
        <legend>Recipients${count ? ` (${count})` : ""}</legend>
        <div class="columns">
          ${RECIPIENT_KINDS.map(
            (kind) => html`<${Field}
              key=${kind.field}
              label=${kind.label}
              name=${kind.field}
              rows="3"
              value=${form[kind.field]}
              onInput=${set(kind.field)}
              hint=${kind.hint}
              autocomplete="off"
              spellcheck="false"
            />`,
          )}
        </div>
      </fieldset>
      ${email &&
      html`<fieldset>
        <legend>Email</legend>
        <${Field} label="Subject" name="subject" value=${form.subject} onInput=${set("subject")} required maxlength="998" />
        <${Field}
          label="Body"
          name="body"
          rows="6"
          value=${form.body}
          onInput=${set("body")}
          required
          hint="$recipientName$ and $recipientNumber$ are filled in per recipient."
        />
        <div class="filters">
          <${Field} label="Content type" name="contentType" value=${form.contentType} onInput=${set("contentType")} options=${[["Plain", "Plain text"], ["Html", "HTML"]]} />
          <${Field}
            label="From address"
            name="fromAddress"
            type="email"
            value=${form.fromAddress}
            onInput=${set("fromAddress")}
            hint="Optional: Herald's default sender, unless an administrator granted you another."
          />
        </div>
      </fieldset>`}
      ${sms &&
      html`<fieldset>
        <legend>SMS</legend>
        <${Field}
          label="SMS text"
          name="smsBody"
          rows="4"
          value=${form.smsBody}
          onInput=${set("smsBody")}
          required
          hint=${`${length.length} ${length.encoding === "GSM-7" ? "characters" : "UTF-16 units"} (${length.encoding}), ${length.segments} segment${length.segments === 1 ? "" : "s"} of at most 16.`}
        />
        <${Field}
          label="SMS sender"
          name="senderNumber"
          value=${form.senderNumber}
          onInput=${set("senderNumber")}
          maxlength="16"
          hint="Optional: a name or number an administrator granted you; empty: Herald's default."
        />
      </fieldset>`}
      <fieldset>
        <legend>Order</legend>
        <div class="filters">
          <${Field} label="Sender's reference" name="reference" value=${form.reference} onInput=${set("reference")} maxlength="200" hint="Optional: your own reference, shown in the list." />
          <${Field}
            label="Send time"
            name="sendAt"
            type="datetime-local"
            value=${form.sendAt}
            onInput=${set("sendAt")}
            min=${localInput(new Date())}
            hint="Optional, your time zone. Empty: now."
          />
          <${Field}
            label="Resource"
            name="resourceId"
            value=${form.resourceId}
            onInput=${set("resourceId")}
            placeholder="urn:altinn:resource:example"
            hint="Optional: where status events are published (a resource you may publish to)."
          />
          <${Field}
            label="Sending time"
            name="sendingTimePolicy"
            value=${form.sendingTimePolicy}
            onInput=${set("sendingTimePolicy")}
            options=${[["", "Default (SMS by day, email any time)"], ["Anytime", "Any time"], ["Daytime", "Daytime only (09:00–17:00)"]]}
          />
          <${Field}
            label="Condition endpoint"
            name="conditionEndpoint"
            type="url"
            value=${form.conditionEndpoint}
            onInput=${set("conditionEndpoint")}
            hint='Optional: Herald asks this URL before sending; {"sendNotification": false} stops the order.'
          />
        </div>
        <${Field}
          type="checkbox"
          label="Ignore reservation"
          name="ignoreReservation"
          value=${form.ignoreReservation}
          onInput=${set("ignoreReservation")}
          hint="Also send to persons who reserved themselves against digital notifications (only where the law allows it)."
        />
      </fieldset>
      <${ErrorNotice} error=${action.error} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled=${action.busy}>${action.busy ? "Sending order…" : "Send order"}</button>
        <button type="button" class="secondary" onClick=${onClose}>Discard</button>
      </div>
    </form>
  </section>`;
}

function recipientText(recipient) {
  return (
    recipient?.emailAddress ||
    recipient?.mobileNumber ||
    (recipient?.nationalIdentityNumber && `person ${recipient.nationalIdentityNumber}`) ||
    (recipient?.organizationNumber && `organisation ${recipient.organizationNumber}`) ||
    ""
  );
}

export function NotificationsPage({ route }) {
  const creating = route.query.get("new") === "1";
  const list = usePages(async (after) => {
    const { data, headers } = await get("notifications/orders", { size: PAGE, after });
    return { items: data.orders, headers };
  });
  const orders = list.items;

  const columns = [
    {
      title: "Order",
      cell: (o) => html`<a href=${href("notifications", o.id)} aria-label=${`Order ${o.sendersReference || o.id}`}>${o.sendersReference || html`<code>${o.id}</code>`}</a>`,
    },
    { title: "Created", cell: (o) => html`<${Time} value=${o.created} />` },
    { title: "Status", cell: (o) => html`<${Status} value=${o.processingStatus?.status} />` },
    { title: "Channel", cell: (o) => CHANNEL_NAMES[o.notificationChannel] || o.notificationChannel },
    { title: "Recipients", cell: (o) => o.recipientCount },
    { title: "Send time", cell: (o) => (o.requestedSendTime ? html`<${Time} value=${o.requestedSendTime} />` : html`<span class="muted">at once</span>`) },
  ];

  return html`<${Page}
    title="Notifications"
    actions=${html`<button type="button" class="primary" aria-expanded=${creating} onClick=${() => setQuery({ new: creating ? "" : "1" })}>New order</button>
      <button type="button" class="secondary" onClick=${list.reload} disabled=${list.loading}>Refresh</button>`}
  >
    <p class="muted">Email and SMS orders you made, newest first, with their status as stored (an order shows Completed on its own page once every notification is final). Open one to follow each recipient to delivery.</p>
    ${creating && html`<${NewOrder} onClose=${() => setQuery({ new: "" })} />`}
    <${ErrorNotice} error=${list.error} onRetry=${list.retry} />
    ${list.loading && !orders.length ? html`<${Loading} what="Loading orders" />` : null}
    <${Table}
      caption="Your orders"
      columns=${columns}
      rows=${orders.map((o) => ({ ...o, key: o.id }))}
      empty=${list.loading ? "" : "You have made no orders yet. Choose New order to send one."}
    />
    <div class="pager">
      <button type="button" class="secondary" disabled=${!list.cursor || list.loading} onClick=${list.more}>${list.loading && orders.length ? "Loading…" : "Load more"}</button>
      <span class="muted">${orders.length} order${orders.length === 1 ? "" : "s"} shown</span>
    </div>
  <//>`;
}

// ---------------------------------------------------------------------------------------------

function stepClass(step, index, steps) {
  const last = index === steps.length - 1;
  if (!last) return "done";
  if (String(step.status).startsWith("Failed")) return "failed";
  return notificationFinal(step.status) ? "done" : "current";
}

function History({ steps }) {
  if (!steps?.length) return html`<span class="muted">—</span>`;
  return html`<ol class="steps" aria-label="Status history">
    ${steps.map(
      (step, index) => html`<li class=${stepClass(step, index, steps)}>
        <strong>${step.status}</strong> <${Time} value=${step.at} />
        ${step.description ? html`<br /><span class="muted">${step.description}</span>` : null}
      </li>`,
    )}
  </ol>`;
}

function Counts({ counts }) {
  const channels = Object.entries(counts || {});
  if (!channels.length) return null;
  return html`<div class="figures">
    ${channels.map(
      ([channel, c]) => html`<div class="figure" key=${channel}>
        <div class="label">${channel === "sms" ? "SMS" : "Email"}</div>
        <div class="value">${c.delivered} of ${c.generated} delivered</div>
        <div class="muted">${c.succeeded} sent · ${c.failed} failed</div>
      </div>`,
    )}
  </div>`;
}

function Lookup({ id }) {
  let lookup = null;
  try {
    lookup = JSON.parse(sessionStorage.getItem(`herald.lookup.${id}`) || "null");
  } catch {
    lookup = null;
  }
  if (!lookup || (!lookup.isReserved?.length && !lookup.missingContact?.length)) return null;
  return html`<${Notice} kind="warn">
    <p class="notice-title">Not everyone can be reached</p>
    ${lookup.isReserved?.length ? html`<p>Reserved against digital notifications: ${lookup.isReserved.join(", ")}.</p>` : null}
    ${lookup.missingContact?.length ? html`<p>No contact details found: ${lookup.missingContact.join(", ")}.</p>` : null}
  <//>`;
}

function OrderFacts({ order }) {
  const email = order.emailTemplate;
  const sms = order.smsTemplate;
  return html`<dl class="facts">
    <dt>Order id</dt><dd><code>${order.id}</code></dd>
    <dt>Created</dt><dd><${Time} value=${order.created} /></dd>
    <dt>Channel</dt><dd>${CHANNEL_NAMES[order.notificationChannel] || order.notificationChannel}</dd>
    <dt>Send time</dt><dd>${order.requestedSendTime ? html`<${Time} value=${order.requestedSendTime} />` : "at once"}</dd>
    ${order.sendersReference && html`<dt>Sender's reference</dt><dd>${order.sendersReference}</dd>`}
    ${order.resourceId && html`<dt>Resource</dt><dd><code>${order.resourceId}</code></dd>`}
    ${order.sendingTimePolicy && html`<dt>Sending time</dt><dd>${order.sendingTimePolicy}</dd>`}
    ${order.conditionEndpoint && html`<dt>Condition endpoint</dt><dd><code>${order.conditionEndpoint}</code></dd>`}
    <dt>Reservation</dt><dd>${order.ignoreReservation ? "ignored" : "respected"}</dd>
    <dt>Recipients</dt><dd>${(order.recipients || []).map(recipientText).join(", ")}</dd>
    ${email &&
    html`<dt>Email</dt>
      <dd>
        <strong>${email.subject}</strong> <span class="muted">(${email.contentType}${email.fromAddress ? `, from ${email.fromAddress}` : ""})</span>
        <pre class="message">${email.body}</pre>
      </dd>`}
    ${sms &&
    html`<dt>SMS</dt>
      <dd>
        ${sms.senderNumber && html`<span class="muted">from ${sms.senderNumber}</span>`}
        <pre class="message">${sms.body}</pre>
      </dd>`}
  </dl>`;
}

export function OrderPage({ id }) {
  const order = useLoad(async () => (await get(`notifications/orders/${encodeURIComponent(id)}`)).data, [id]);
  const [report, setReport] = useState(null);
  const [state, setState] = useState({ loading: true, error: null, checked: null });
  const [confirming, setConfirming] = useState(false);
  const cancel = useAction();

  // Polls every 2 s while anything can still change; stops when all is final, when it is scheduled
  // later, on an error (until Try again), or when the page is left.
  const check = usePoll(
    async (signal) => {
      try {
        const { data } = await get(`notifications/orders/${encodeURIComponent(id)}/status`, undefined, signal);
        if (signal.aborted) return;
        rememberNotifications(id, data.notifications);
        setReport(data);
        setState({ loading: false, error: null, checked: new Date().toISOString() });
      } catch (error) {
        if (!signal.aborted) setState((previous) => ({ ...previous, loading: false, error }));
      }
    },
    REFRESH_EVERY_MS,
    !state.error && !(report && (settled(report) || scheduledLater(report, order.data))),
  );
  // Refresh and Try again: an error cleared lets the polling start again at once; otherwise (or when
  // nothing is polled any more) the status is read now.
  const refresh = () => {
    const polled = !(report && (settled(report) || scheduledLater(report, order.data)));
    if (state.error) setState((previous) => ({ ...previous, error: null }));
    if (!state.error || !polled) check();
  };

  const status = report?.processingStatus?.status || order.data?.processingStatus?.status;
  const notifications = report?.notifications || [];
  const done = report && settled(report);
  const scheduled = report && scheduledLater(report, order.data);
  const cancellable = status === "Registered";

  const doCancel = async () => {
    const result = await cancel.run(async () => (await post(`notifications/orders/${encodeURIComponent(id)}/cancel`)).data);
    if (!result) return;
    setConfirming(false);
    order.set(result);
    check();
  };

  const columns = [
    {
      title: "Recipient",
      cell: (n) => html`<span>${n.recipient?.address || recipientText(n.recipient)}</span>
        ${n.recipient?.address && (n.recipient.nationalIdentityNumber || n.recipient.organizationNumber)
          ? html`<br /><span class="muted">for ${recipientText({ ...n.recipient, emailAddress: null, mobileNumber: null })}</span>`
          : null}`,
    },
    { title: "Channel", cell: (n) => (n.channel === "sms" ? "SMS" : "Email") },
    {
      title: "Status",
      cell: (n) => html`<${Status} value=${n.sendStatus?.status} />${n.sendStatus?.description ? html`<br /><span class="muted">${n.sendStatus.description}</span>` : null}`,
    },
    { title: "Last update", cell: (n) => html`<${Time} value=${n.sendStatus?.lastUpdate} />` },
    { title: "History", cell: (n) => html`<${History} steps=${n.history} />` },
  ];

  const title = order.data?.sendersReference ? `Order ${order.data.sendersReference}` : "Order";
  return html`<${Page}
    title=${title}
    actions=${html`<a class="button secondary" href=${href("notifications")}>All orders</a>
      <button type="button" class="secondary" onClick=${refresh}>Refresh</button>
      ${cancellable && html`<button type="button" class="danger" onClick=${() => setConfirming(true)}>Cancel order</button>`}`}
  >
    <${ErrorNotice} error=${order.error} onRetry=${order.reload} />
    <${ErrorNotice} error=${state.error} onRetry=${refresh} />
    <${Lookup} id=${id} />
    ${(order.loading && !order.data) || (state.loading && !report) ? html`<${Loading} what="Loading the order" />` : null}
    ${status &&
    html`<section aria-labelledby="order-status-heading">
      <h2 id="order-status-heading">Status</h2>
      <p aria-live="polite">
        Order <${Status} value=${status} />
        ${report?.processingStatus?.lastUpdate ? html` since <${Time} value=${report.processingStatus.lastUpdate} />` : null}
        <span class="muted">
          ${done
            ? " · final: nothing changes any more."
            : scheduled
              ? " · scheduled: refresh when it is due."
              : report
                ? " · refreshing every 2 seconds until every notification is final."
                : ""}
        </span>
      </p>
      <${Counts} counts=${report?.counts} />
    </section>`}
    ${report &&
    html`<section aria-labelledby="recipients-heading">
      <h2 id="recipients-heading">Recipients</h2>
      <${Table}
        caption="Notifications of this order"
        columns=${columns}
        rows=${notifications.map((n) => ({ ...n, key: n.id }))}
        empty=${status === "Registered" || status === "Processing"
          ? "No notifications yet: they are made when the order is processed."
          : "This order made no notifications."}
      />
    </section>`}
    ${order.data &&
    html`<section aria-labelledby="order-heading">
      <h2 id="order-heading">The order</h2>
      <${OrderFacts} order=${order.data} />
    </section>`}
    <${Confirm}
      open=${confirming}
      title="Cancel this order?"
      confirm="Yes, cancel the order"
      dismiss="Keep the order"
      busy=${cancel.busy}
      error=${cancel.error}
      onConfirm=${doCancel}
      onClose=${() => {
        setConfirming(false);
        cancel.clear();
      }}
    >
      <p>Nothing of it will be sent. This cannot be undone: to send it later, make a new order.</p>
    <//>
  <//>`;
}

function scheduledLater(report, order) {
  if (report.processingStatus?.status !== "Registered" || !order?.requestedSendTime) return false;
  return new Date(order.requestedSendTime).getTime() - Date.now() > SCHEDULED_AHEAD_MS;
}

// Nothing more can change: the order ended, or was processed and every notification is final.
export function settled(report) {
  const status = report.processingStatus?.status;
  if (ORDER_FINAL.has(status)) return true;
  return status === "Processed" && report.notifications.every((n) => notificationFinal(n.sendStatus?.status));
}
