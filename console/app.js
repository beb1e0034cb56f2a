// The Herald Console: sign in, then the pages for events, subscriptions, notifications and
// administration. Every figure comes from /api/v1 with the person's own token.
import { get } from "./lib/api.js";
import { completeSignIn, currentUser, loadConfig, scopesOf, settings, signIn, signOut } from "./lib/auth.js";
import { href, useRoute } from "./lib/router.js";
import { ErrorNotice, html, render, useEffect, useRef, useState } from "./lib/ui.js";
import { AdminPage } from "./pages/admin.js";
import { EventsPage } from "./pages/events.js";
import { NotificationsPage, OrderPage } from "./pages/notifications.js";
import { OutboxPage } from "./pages/outbox.js";
import { SubscriptionPage } from "./pages/subscription.js";
import { SubscriptionsPage } from "./pages/subscriptions.js";

const SECTIONS = [
  { path: "events", title: "Events", scopes: ["events.read"] },
  { path: "subscriptions", title: "Subscriptions", scopes: ["events.subscribe"] },
  { path: "notifications", title: "Notifications", scopes: ["notifications.order"] },
  { path: "outbox", title: "Outbox", scopes: ["notifications.order", "admin"], local: true },
  { path: "admin", title: "Administration", scopes: ["admin"] },
];

function visible(section, scopes) {
  if (section.local && settings().mode !== "local") return false;
  return section.scopes.some((scope) => scopes.has(scope));
}

function SignedOut({ error }) {
  const local = settings()?.mode === "local";
  return html`<main id="main" tabindex="-1" class="signed-out">
    <h1>Herald Console</h1>
    <p>See your events, subscriptions and notifications, and fix what fails.</p>
    ${error && html`<${ErrorNotice} error=${error} />`}
    <button type="button" class="primary" onClick=${() => signIn()}>Sign in</button>
    <p class="hint">
      ${local
        ? "Herald runs under devhost: its local issuer lets you choose who you are (an organisation, a person, a system or an administrator)."
        : "You sign in with Microsoft Entra ID. The console acts only with your own access."}
    </p>
  </main>`;
}

// Who Herald says the person is (GET /api/v1/me): with Entra ID the token names only an account, which
// Herald maps to a Herald identity; an account not mapped yet shows the ids to ask an administrator for.
function Identity() {
  const [me, setMe] = useState(null);
  useEffect(() => {
    get("me").then(({ data }) => setMe(data), (error) => setMe({ error }));
  }, []);
  if (!me) return html`<span class="identity" title="Signed in as">…</span>`;
  if (me.error) return html`<span class="identity" title=${me.error.message}>no Herald identity</span>`;
  const title = me.mapped ? "Signed in as" : "Your account is not mapped yet: administration only";
  return html`<span class="identity" title=${title}>${me.identity}</span>`;
}

function Navigation({ user, scopes, current }) {
  const [open, setOpen] = useState(false);
  const menu = useRef(null);
  const sections = SECTIONS.filter((section) => visible(section, scopes));
  useEffect(() => setOpen(false), [current]); // another page, by a link or the address bar
  // The phone menu closes on Escape (the focus goes back to its button) and when the focus moves from
  // it to anything but its own button (not when the window loses the focus: relatedTarget is null).
  const escape = (event) => {
    if (event.key !== "Escape" || !open) return;
    event.preventDefault();
    setOpen(false);
    menu.current?.focus();
  };
  const left = (event) => {
    const to = event.relatedTarget;
    if (to && !event.currentTarget.contains(to) && to !== menu.current) setOpen(false);
  };
  return html`<header class="top">
    <a class="brand" href="#/">Herald <span>Console</span></a>
    <button type="button" class="menu secondary" ref=${menu} aria-expanded=${open} aria-controls="nav" onClick=${() => setOpen(!open)} onKeyDown=${escape}>Menu</button>
    <nav id="nav" aria-label="Sections" class=${open ? "open" : ""} onKeyDown=${escape} onfocusout=${left}>
      <ul>
        ${sections.map(
          (section) => html`<li>
            <a href=${href(section.path)} aria-current=${current === section.path ? "page" : undefined} onClick=${() => setOpen(false)}>${section.title}</a>
          </li>`,
        )}
      </ul>
    </nav>
    <div class="who">
      <${Identity} />
      <button type="button" class="secondary" onClick=${() => signOut()}>Sign out</button>
    </div>
  </header>`;
}

function Home({ scopes }) {
  const first = SECTIONS.find((section) => visible(section, scopes));
  useEffect(() => {
    if (first) location.replace(href(first.path));
  }, []);
  if (first) return null;
  return html`<section class="page"><h1>Nothing to show</h1>
    <p>Your sign-in carries none of the scopes the console's pages need (events.read, events.subscribe, notifications.order or admin).</p>
    <p>Sign out and sign in with an identity that has them.</p></section>`;
}

function NotFound() {
  return html`<section class="page"><h1>No such page</h1><p><a href="#/">Go to the start page</a>.</p></section>`;
}

function Console({ user }) {
  const route = useRoute();
  const scopes = scopesOf(user);
  const [section, ...rest] = route.parts;
  let page;
  if (!section) page = html`<${Home} scopes=${scopes} />`;
  else if (section === "events") page = html`<${EventsPage} route=${route} />`;
  else if (section === "subscriptions" && rest.length) page = html`<${SubscriptionPage} id=${rest[0]} route=${route} />`;
  else if (section === "subscriptions") page = html`<${SubscriptionsPage} route=${route} />`;
  else if (section === "notifications" && rest.length) page = html`<${OrderPage} id=${rest[0]} route=${route} />`;
  else if (section === "notifications") page = html`<${NotificationsPage} route=${route} />`;
  else if (section === "outbox") page = html`<${OutboxPage} route=${route} />`;
  else if (section === "admin") page = html`<${AdminPage} route=${route} />`;
  else page = html`<${NotFound} />`;
  return html`<${Navigation} user=${user} scopes=${scopes} current=${section} />
    <main id="main" tabindex="-1">${page}</main>`;
}

// The skip link moves the focus to the page's content itself: as a plain #main link it would change
// the address, which the hash router reads as a page named "main".
function skipLinks() {
  document.querySelector(".skip-link")?.addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main")?.focus();
  });
}

async function start() {
  skipLinks();
  const root = document.getElementById("app");
  try {
    await loadConfig();
  } catch (error) {
    render(html`<main id="main" tabindex="-1"><${ErrorNotice} error=${error} /></main>`, root);
    return;
  }
  let failure = null;
  try {
    await completeSignIn();
  } catch (error) {
    failure = error;
  }
  const user = await currentUser();
  render(user ? html`<${Console} user=${user} />` : html`<${SignedOut} error=${failure} />`, root);
}

start();
