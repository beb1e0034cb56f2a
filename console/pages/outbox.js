// The local outbox: under devhost Herald sends no real email or SMS; the local sink captures each
// message instead. This page shows what would have been sent, as text (HTML bodies included: they
// are shown as their source, never rendered).
import { ApiError, get } from "../lib/api.js";
import { href } from "../lib/router.js";
import { ErrorNotice, Field, html, Loading, Notice, Page, Status, Table, Time, useEffect, useState } from "../lib/ui.js";
import { orderOfNotification, rememberNotifications, settled } from "./notifications.js";

const PREVIEW = 160;
const RESOLVE_ORDERS = 20; // the newest orders looked at to link messages to their order

// Links captured messages to their orders: the outbox names notifications, an order's status names
// its notifications. Reads the newest orders' statuses once per order that can still gain some.
const settledOrders = new Set();
async function resolveOrders(messages) {
  if (!messages.some((m) => !orderOfNotification(m.notification_id))) return;
  let orders;
  try {
    orders = (await get("notifications/orders", { size: RESOLVE_ORDERS })).data.orders;
  } catch (error) {
    if (error instanceof ApiError) return; // an administrator without notifications.order: no links
    throw error;
  }
  await Promise.all(
    orders
      .filter((order) => !settledOrders.has(order.id))
      .map(async (order) => {
        try {
          const { data } = await get(`notifications/orders/${encodeURIComponent(order.id)}/status`);
          rememberNotifications(order.id, data.notifications);
          if (settled(data)) settledOrders.add(order.id);
        } catch {
          // One order not read: its messages show without a link.
        }
      }),
  );
}

function Body({ message }) {
  const text = message.body || "";
  const kind = message.content_type === "Html" ? "HTML source" : "text";
  if (text.length <= PREVIEW && !text.includes("\n")) return html`<span class="message-text">${text}</span>`;
  return html`<details class="message">
    <summary>${text.slice(0, PREVIEW).replace(/\s+/g, " ")}${text.length > PREVIEW ? "…" : ""} <span class="visually-hidden">(show the whole ${kind})</span></summary>
    <pre class="message">${text}</pre>
  </details>`;
}

const OUTCOMES = {
  Delivered: "Delivered",
  Bounced: "Failed_Bounced",
  Suppressed: "Failed_SupressedRecipient",
  FilteredSpam: "Failed_FilteredSpam",
  Quarantined: "Failed_Quarantined",
  Failed: "Failed",
};

function Outcome({ value }) {
  if (value === "none") return html`<span class="muted">no report (times out as Failed_TTL)</span>`;
  // The status the sink's delivery report gives the notification.
  return html`<${Status} value=${OUTCOMES[value] || value} />`;
}

export function OutboxPage() {
  const [messages, setMessages] = useState([]);
  const [state, setState] = useState({ loading: true, error: null, checked: null });
  const [filter, setFilter] = useState({ channel: "", to: "" });
  const [, setLinked] = useState(0);

  async function load() {
    setState((previous) => ({ ...previous, loading: true, error: null }));
    try {
      const { data } = await get("dev/outbox");
      setMessages(data.messages || []);
      setState({ loading: false, error: null, checked: new Date().toISOString() });
      resolveOrders(data.messages || [])
        .then(() => setLinked((n) => n + 1))
        .catch(() => {});
    } catch (error) {
      setState({ loading: false, error, checked: null });
    }
  }

  useEffect(() => {
    load();
  }, []);

  const shown = messages.filter(
    (m) => (!filter.channel || m.channel === filter.channel) && (!filter.to || String(m.to).toLowerCase().includes(filter.to.trim().toLowerCase())),
  );

  const columns = [
    { title: "Time", cell: (m) => html`<${Time} value=${m.at} />` },
    { title: "Channel", cell: (m) => (m.channel === "sms" ? "SMS" : "Email") },
    { title: "From", cell: (m) => html`<code>${m.sender}</code>` },
    { title: "To", cell: (m) => html`<code>${m.to}</code>` },
    { title: "Subject", cell: (m) => m.subject ?? html`<span class="muted">—</span>` },
    {
      title: "Body",
      cell: (m) => html`<${Body} message=${m} />${m.content_type === "Html" ? html`<br /><span class="muted">HTML, shown as source</span>` : null}`,
    },
    { title: "Outcome", cell: (m) => html`<${Outcome} value=${m.outcome} />` },
    {
      title: "Order",
      cell: (m) => {
        const order = orderOfNotification(m.notification_id);
        return order
          ? html`<a href=${href("notifications", order)} aria-label=${`Order of the message to ${m.to}`}>Open order</a>`
          : html`<span class="muted" title=${`Notification ${m.notification_id}`}>not known</span>`;
      },
    },
  ];

  const notFound = state.error instanceof ApiError && state.error.status === 404;
  return html`<${Page}
    title="Outbox"
    actions=${html`<button type="button" class="secondary" onClick=${load} disabled=${state.loading}>${state.loading ? "Refreshing…" : "Refresh"}</button>`}
  >
    <p class="explain muted">
      Herald runs locally, so no email or SMS leaves this machine: the local sink keeps each message here instead and
      reports an outcome chosen by the address (bounce@…, spam@…, silent@… for email; numbers ending 91, 92 or 93 for
      SMS; anything else is Delivered). You see your own orders' messages; an administrator sees everyone's.
    </p>
    ${notFound
      ? html`<${Notice} kind="warn"><p class="notice-title">No outbox here</p><p>The outbox exists only when Herald runs locally with its local sink, not with real email and SMS providers.</p><//>`
      : html`<${ErrorNotice} error=${state.error} onRetry=${load} />`}
    <form class="filters" aria-label="Filter messages" onSubmit=${(event) => event.preventDefault()}>
      <${Field} label="Channel" name="channel" value=${filter.channel} onInput=${(v) => setFilter({ ...filter, channel: v })} options=${[["", "Email and SMS"], ["email", "Email"], ["sms", "SMS"]]} />
      <${Field} label="To contains" name="to" type="search" value=${filter.to} onInput=${(v) => setFilter({ ...filter, to: v })} />
    </form>
    ${state.loading && !messages.length ? html`<${Loading} what="Loading the outbox" />` : null}
    <${Table}
      caption="Captured messages, newest first"
      columns=${columns}
      rows=${shown.map((m) => ({ ...m, key: m.reference || m.notification_id }))}
      empty=${state.loading ? "" : messages.length ? "No message matches the filter." : "Nothing was sent yet."}
    />
    <p class="muted" aria-live="polite">
      ${shown.length} of ${messages.length} message${messages.length === 1 ? "" : "s"}${state.checked ? html`, read <${Time} value=${state.checked} />` : null}
    </p>
  <//>`;
}
