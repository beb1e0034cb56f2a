// Administration (scope admin): resource policies, roles, delegations and orderers' senders: who
// may publish, read, subscribe and send as whom. Every change takes effect within about a second.
import { ApiError, call, del, get, post, put } from "../lib/api.js";
import { href, setQuery } from "../lib/router.js";
import { Confirm, ErrorNotice, Field, html, Json, listOf, Loading, Notice, Page, Table, useAction, useEffect, useLoad, usePages, useState } from "../lib/ui.js";

const TABS = [
  ["policies", "Policies"],
  ["roles", "Roles"],
  ["delegations", "Delegations"],
  ["senders", "Senders"],
];
const PARTY_HINT = "org:<organisation number>, person:<national identity number> or system:<id>.";

// The API takes lists; an empty field is an empty one.
const items = (text) => listOf(text) || [];
const joined = (list, separator = "\n") => (list || []).join(separator);

function Chips({ values, empty = "none" }) {
  if (!values?.length) return html`<span class="muted">${empty}</span>`;
  return html`<ul class="chips">${values.map((value) => html`<li><code>${value}</code></li>`)}</ul>`;
}

// Herald names a field by its JSON path (body.rules.0.roles); the person sees the form's words.
function withWords(error, words) {
  if (error instanceof ApiError && Array.isArray(error.problem.errors)) {
    error.problem.errors = error.problem.errors.map((item) => ({ ...item, location: words(String(item.location || "").replace(/^body\.?/, "")) }));
  }
  return error;
}

async function wordy(action, words) {
  try {
    return await action();
  } catch (error) {
    throw withWords(error, words);
  }
}

function Explanation() {
  return html`<details class="explain">
    <summary>How Herald decides who may do what</summary>
    <p>
      Every caller is a party named in its token: <code>org:</code> an organisation number, <code>person:</code> a national
      identity number or <code>system:</code> an id. A resource without a policy can be used by nobody.
    </p>
    <ul>
      <li><strong>Policies</strong>, one per resource: its <em>publishers</em> may publish events (<code>*</code>: anyone), its
        <em>owners</em> read and subscribe to every event, and <em>rules</em> let holders of a role read or subscribe to the events
        about the party they hold the role for (an event's subject), optionally for some event types only. The role
        <code>self</code> means the party itself.</li>
      <li><strong>Roles</strong> are held for a party: the general manager (<code>DAGL</code>) of an organisation, for example.</li>
      <li><strong>Delegations</strong> give another party roles for a party: an accounting firm acting for its clients.
        They are stored as that party's roles, marked delegated.</li>
      <li><strong>Senders</strong>: the email addresses, domains and SMS sender names an orderer may send as, besides Herald's defaults.</li>
    </ul>
    <p>Decisions are cached briefly and dropped within about a second of any change here. Where Herald asks an external
      decision point instead (<code>HERALD_AUTHORIZATION=pdp</code>), the policies and roles here are not what decides.</p>
  </details>`;
}

export function AdminPage({ route }) {
  const tab = TABS.some(([name]) => name === route.query.get("tab")) ? route.query.get("tab") : "policies";
  let body;
  if (tab === "policies") body = html`<${PoliciesTab} route=${route} />`;
  else if (tab === "roles") body = html`<${RolesTab} route=${route} />`;
  else if (tab === "delegations") body = html`<${DelegationsTab} />`;
  else body = html`<${SendersTab} />`;
  return html`<${Page} title="Administration">
    <${Explanation} />
    <nav aria-label="Administration">
      <ul class="tabs">
        ${TABS.map(
          ([name, title]) => html`<li><a href=${href("admin", { tab: name })} aria-current=${tab === name ? "page" : undefined}>${title}</a></li>`,
        )}
      </ul>
    </nav>
    ${body}
  <//>`;
}

// ------------------------------------------------------------------------------------ policies

function PoliciesTab({ route }) {
  const resource = route.query.get("resource");
  if (resource || route.query.get("new") === "1") return html`<${PolicyEditor} key=${resource || "new"} resource=${resource} />`;
  return html`<${PolicyList} />`;
}

function rulesText(rules) {
  if (!rules?.length) return html`<span class="muted">no rules</span>`;
  return html`<ul class="plain">
    ${rules.map(
      (rule) => html`<li>${rule.roles.join(", ")}: ${rule.actions.join(", ")}${rule.types?.length ? ` (${rule.types.join(", ")})` : ""}</li>`,
    )}
  </ul>`;
}

function PolicyList() {
  const list = usePages(
    async (after) => {
      const { data, headers } = await get("admin/policies", { size: 50, after });
      return { items: data.policies, headers };
    },
    { key: (p) => p.resource },
  );
  const policies = list.items;
  const [open, setOpen] = useState("");

  const columns = [
    { title: "Resource", cell: (p) => html`<a href=${href("admin", { tab: "policies", resource: p.resource })}><code>${p.resource}</code></a>` },
    { title: "Publishers", cell: (p) => html`<${Chips} values=${p.publishers} />` },
    { title: "Owners", cell: (p) => html`<${Chips} values=${p.owners} />` },
    { title: "Rules", cell: (p) => rulesText(p.rules) },
  ];

  return html`<section aria-labelledby="policies-heading">
    <div class="page-header">
      <h2 id="policies-heading">Resource policies</h2>
      <div class="page-actions">
        <button type="button" class="primary" onClick=${() => setQuery({ new: "1", resource: "" })}>New policy</button>
        <button type="button" class="secondary" onClick=${list.reload} disabled=${list.loading}>Refresh</button>
      </div>
    </div>
    <form
      class="filters"
      aria-label="Open a policy"
      onSubmit=${(event) => {
        event.preventDefault();
        if (open.trim()) setQuery({ resource: open.trim() });
      }}
    >
      <${Field} label="Resource URN" name="open" value=${open} onInput=${setOpen} placeholder="urn:altinn:resource:example" />
      <div class="form-actions"><button type="submit" class="secondary">Open policy</button></div>
    </form>
    <${ErrorNotice} error=${list.error} onRetry=${list.retry} />
    ${list.loading && !policies.length ? html`<${Loading} what="Loading policies" />` : null}
    <${Table}
      caption="Resource policies"
      columns=${columns}
      rows=${policies.map((p) => ({ ...p, key: p.resource }))}
      empty=${list.loading ? "" : "No stored policies. Herald's own resources (urn:herald:…) have built-in ones, not listed here."}
    />
    <div class="pager">
      <button type="button" class="secondary" disabled=${!list.cursor || list.loading} onClick=${list.more}>Load more</button>
      <span class="muted">${policies.length} polic${policies.length === 1 ? "y" : "ies"} shown</span>
    </div>
  </section>`;
}

const emptyRule = () => ({ roles: "", read: true, subscribe: false, types: "" });

function draftOf(policy) {
  return {
    publishers: joined(policy?.publishers),
    owners: joined(policy?.owners),
    rules: (policy?.rules || []).map((rule) => ({
      roles: joined(rule.roles, ", "),
      read: rule.actions.includes("read"),
      subscribe: rule.actions.includes("subscribe"),
      types: joined(rule.types, ", "),
    })),
  };
}

function policyOf(draft) {
  return {
    publishers: items(draft.publishers),
    owners: items(draft.owners),
    rules: draft.rules
      .filter((rule) => items(rule.roles).length || items(rule.types).length)
      .map((rule) => ({
        roles: items(rule.roles),
        actions: [rule.read && "read", rule.subscribe && "subscribe"].filter(Boolean),
        types: items(rule.types),
      })),
  };
}

function policyWords(location) {
  const match = /^rules\.(\d+)\.?(\w*)/.exec(location);
  if (match) return `Rule ${Number(match[1]) + 1}${match[2] ? `: ${match[2] === "types" ? "event types" : match[2]}` : ""}`;
  return { publishers: "Publishers", owners: "Owners", rules: "Rules" }[location.split(".")[0]] || location;
}

function RuleEditor({ rule, index, onChange, onRemove }) {
  const set = (name) => (value) => onChange({ ...rule, [name]: value });
  return html`<fieldset class="rule">
    <legend>Rule ${index + 1}</legend>
    <div class="filters">
      <${Field} label="Roles" name=${`roles-${index}`} value=${rule.roles} onInput=${set("roles")} hint="Comma-separated: self (the party itself), DAGL, … A rule without roles is left out." />
      <${Field} label="Event types" name=${`types-${index}`} value=${rule.types} onInput=${set("types")} hint="Comma-separated; a trailing * is a prefix. Empty: every type." />
    </div>
    <fieldset>
      <legend>Actions</legend>
      <div class="checks">
        <${Field} type="checkbox" label="Read" name=${`read-${index}`} value=${rule.read} onInput=${set("read")} />
        <${Field} type="checkbox" label="Subscribe" name=${`subscribe-${index}`} value=${rule.subscribe} onInput=${set("subscribe")} />
      </div>
    </fieldset>
    <button type="button" class="secondary" onClick=${onRemove}>Remove rule ${index + 1}</button>
  </fieldset>`;
}

// A new policy, once saved, reopens under its resource's address: the notice carries over.
let justCreated = null;

function PolicyEditor({ resource }) {
  const isNew = !resource;
  const [name, setName] = useState(resource || "");
  const [draft, setDraft] = useState(draftOf(null));
  const [mode, setMode] = useState("form");
  const [jsonText, setJsonText] = useState("");
  const [jsonError, setJsonError] = useState(null);
  const [saved, setSaved] = useState(() => {
    const created = justCreated && justCreated === resource;
    justCreated = null;
    return created;
  });
  const [missing, setMissing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const save = useAction();
  const remove = useAction();

  const loaded = useLoad(async () => {
    if (isNew) return null;
    try {
      const { data } = await get(`admin/policies/${encodeURIComponent(resource)}`);
      return data;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  }, [resource]);

  useEffect(() => {
    if (loaded.loading || loaded.error) return;
    setMissing(!isNew && loaded.data === null);
    setDraft(loaded.data ? draftOf(loaded.data) : { ...draftOf(null), rules: [emptyRule()] });
  }, [loaded.data, loaded.loading]);

  const toJson = () => {
    setJsonText(JSON.stringify(policyOf(draft), null, 2));
    setJsonError(null);
    setMode("json");
  };
  const fromJson = () => {
    try {
      const value = JSON.parse(jsonText);
      if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("the policy must be a JSON object");
      setDraft(draftOf({ publishers: value.publishers, owners: value.owners, rules: value.rules }));
      setJsonError(null);
      setMode("form");
      return value;
    } catch (error) {
      setJsonError(`The JSON does not read: ${error.message}.`);
      return null;
    }
  };

  const submit = async (event) => {
    event.preventDefault();
    setSaved(null);
    let policy;
    if (mode === "json") {
      try {
        policy = JSON.parse(jsonText);
      } catch (error) {
        setJsonError(`The JSON does not read: ${error.message}.`);
        return;
      }
      delete policy.resource;
    } else {
      policy = policyOf(draft);
    }
    const target = name.trim();
    const result = await save.run(() =>
      wordy(async () => {
        if (!target) throw new ApiError(400, { title: "No resource", detail: "Name the resource the policy is for.", errors: [{ location: "Resource", detail: "is required" }] });
        return (await put(`admin/policies/${encodeURIComponent(target)}`, policy)).data;
      }, policyWords),
    );
    if (!result) return;
    setSaved(result);
    setMissing(false);
    setDraft(draftOf(result));
    if (mode === "json") setJsonText(JSON.stringify(policyOf(draftOf(result)), null, 2));
    if (isNew) {
      justCreated = target;
      setQuery({ new: "", resource: target });
    }
  };

  const doDelete = async () => {
    const done = await remove.run(async () => del(`admin/policies/${encodeURIComponent(resource)}`));
    if (!done) return;
    setConfirming(false);
    setQuery({ resource: "", new: "" });
  };

  const setRule = (index) => (rule) => setDraft({ ...draft, rules: draft.rules.map((r, i) => (i === index ? rule : r)) });
  const removeRule = (index) => () => setDraft({ ...draft, rules: draft.rules.filter((_, i) => i !== index) });

  return html`<section aria-labelledby="policy-heading">
    <div class="page-header">
      <h2 id="policy-heading">${isNew ? "New policy" : html`Policy of <code>${resource}</code>`}</h2>
      <div class="page-actions">
        <a class="button secondary" href=${href("admin", { tab: "policies" })}>All policies</a>
        ${!isNew && !missing && html`<button type="button" class="danger" onClick=${() => setConfirming(true)}>Delete policy</button>`}
      </div>
    </div>
    <${ErrorNotice} error=${loaded.error} onRetry=${loaded.reload} />
    ${loaded.loading ? html`<${Loading} what="Loading the policy" />` : null}
    ${missing && html`<${Notice} kind="warn"><p>${resource} has no policy yet: nobody may publish, read or subscribe to it. Save one below to create it.</p><//>`}
    ${saved && html`<${Notice} kind="ok"><p>Saved. It takes effect within about a second.</p><//>`}
    ${!loaded.loading &&
    !loaded.error &&
    html`<form onSubmit=${submit} aria-labelledby="policy-heading">
      ${isNew && html`<${Field} label="Resource URN" name="resource" value=${name} onInput=${setName} required placeholder="urn:altinn:resource:example" />`}
      <div class="form-actions" role="group" aria-label="Editor">
        <button type="button" class=${mode === "form" ? "primary" : "secondary"} aria-pressed=${mode === "form"} onClick=${() => mode === "json" && fromJson()}>Form</button>
        <button type="button" class=${mode === "json" ? "primary" : "secondary"} aria-pressed=${mode === "json"} onClick=${() => mode === "form" && toJson()}>JSON</button>
      </div>
      ${jsonError &&
      html`<div class="notice notice-error" role="alert">
        <p class="notice-title">${jsonError}</p>
        <p class="notice-action">Correct it, or reload the page to start again from the stored policy.</p>
      </div>`}
      ${mode === "json"
        ? html`<${Field}
            label="Policy (JSON)"
            name="json"
            rows="16"
            value=${jsonText}
            onInput=${setJsonText}
            spellcheck="false"
            hint='{"publishers": [...], "owners": [...], "rules": [{"roles": [...], "actions": ["read", "subscribe"], "types": [...]}]}'
          />`
        : html`<div class="columns">
              <${Field} label="Publishers" name="publishers" rows="3" value=${draft.publishers} onInput=${(v) => setDraft({ ...draft, publishers: v })} hint=${`Who may publish, one per line: ${PARTY_HINT} * is anyone.`} />
              <${Field} label="Owners" name="owners" rows="3" value=${draft.owners} onInput=${(v) => setDraft({ ...draft, owners: v })} hint="Who may read and subscribe to every event, one per line." />
            </div>
            <h3>Rules</h3>
            <p class="hint">A rule lets the holders of a role read or subscribe to the events about the party they hold it for. Publishing is granted by Publishers only.</p>
            ${draft.rules.map((rule, index) => html`<${RuleEditor} key=${index} rule=${rule} index=${index} onChange=${setRule(index)} onRemove=${removeRule(index)} />`)}
            <div class="form-actions"><button type="button" class="secondary" onClick=${() => setDraft({ ...draft, rules: [...draft.rules, emptyRule()] })}>Add rule</button></div>`}
      <${ErrorNotice} error=${save.error} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled=${save.busy}>${save.busy ? "Saving…" : "Save policy"}</button>
      </div>
    </form>`}
    ${mode === "form" && !loaded.loading && !isNew && !missing && html`<details><summary>As Herald stores it</summary><${Json} value=${{ resource, ...policyOf(draft) }} label="The policy as JSON" /></details>`}
    <${Confirm}
      open=${confirming}
      title="Delete this policy?"
      confirm="Yes, delete the policy"
      dismiss="Keep the policy"
      busy=${remove.busy}
      error=${remove.error}
      onConfirm=${doDelete}
      onClose=${() => {
        setConfirming(false);
        remove.clear();
      }}
    >
      <p>Without a policy nobody may publish, read or subscribe to <code>${resource}</code>; subscriptions to it stop receiving events.</p>
    <//>
  </section>`;
}

// ------------------------------------------------------------------------------------ roles

function RolesTab({ route }) {
  const holder = route.query.get("holder") || "";
  const [lookup, setLookup] = useState(holder);
  const [grant, setGrant] = useState({ party: "", holder, role: "" });
  const [revoking, setRevoking] = useState(null);
  const [granted, setGranted] = useState(null);
  const granting = useAction();
  const revoke = useAction();
  const roles = useLoad(async () => (holder ? (await get("admin/roles", { holder })).data : null), [holder]);

  useEffect(() => {
    setLookup(holder);
    setGrant((previous) => ({ ...previous, holder: previous.holder || holder }));
  }, [holder]);

  const partyWords = (location) => ({ party: "Party", holder: "Holder", role: "Role" })[location] || location;
  const submitGrant = async (event) => {
    event.preventDefault();
    setGranted(null);
    const result = await granting.run(() => wordy(async () => (await post("admin/roles", grant)).data, partyWords));
    if (!result) return;
    setGranted(result);
    setGrant({ ...grant, party: "", role: "" });
    if (result.holder === roles.data?.holder) roles.reload();
    else setQuery({ holder: result.holder });
  };
  const doRevoke = async () => {
    const done = await revoke.run(() => del("admin/roles", { party: revoking.party, holder: roles.data.holder, role: revoking.role }));
    if (!done) return;
    setRevoking(null);
    setGranted(null);
    roles.reload();
  };

  const columns = [
    { title: "For party", cell: (g) => html`<code>${g.party}</code>` },
    { title: "Role", cell: (g) => html`<code>${g.role}</code>` },
    { title: "Granted", cell: (g) => (g.delegated ? "by delegation" : "directly") },
    {
      title: "Action",
      cell: (g) => html`<button type="button" class="secondary" onClick=${() => setRevoking(g)} aria-label=${`Revoke ${g.role} for ${g.party}`}>Revoke</button>`,
    },
  ];

  return html`<section aria-labelledby="roles-heading">
    <h2 id="roles-heading">Roles</h2>
    <p class="hint">The roles a party holds for other parties, granted directly or by a delegation.</p>
    <form
      class="filters"
      aria-label="Look up roles"
      onSubmit=${(event) => {
        event.preventDefault();
        setQuery({ holder: lookup.trim() });
      }}
    >
      <${Field} label="Holder" name="lookup" value=${lookup} onInput=${setLookup} hint=${PARTY_HINT} required />
      <div class="form-actions"><button type="submit" class="primary">Show roles</button></div>
    </form>
    <${ErrorNotice} error=${roles.error} onRetry=${roles.reload} />
    ${holder && roles.loading ? html`<${Loading} what="Loading roles" />` : null}
    ${roles.data &&
    html`<h3>Roles of <code>${roles.data.holder}</code></h3>
      <${Table}
        caption=${`Roles of ${roles.data.holder}`}
        columns=${columns}
        rows=${roles.data.grants.map((g) => ({ ...g, key: `${g.party}|${g.role}` }))}
        empty="No roles."
      />`}
    <form onSubmit=${submitGrant} aria-labelledby="grant-heading" class="panel">
      <h3 id="grant-heading">Grant a role</h3>
      <div class="filters">
        <${Field} label="Party" name="party" value=${grant.party} onInput=${(v) => setGrant({ ...grant, party: v })} hint="Whom the role is held for (org:… or person:…)." required />
        <${Field} label="Holder" name="holder" value=${grant.holder} onInput=${(v) => setGrant({ ...grant, holder: v })} hint="Who holds it." required />
        <${Field} label="Role" name="role" value=${grant.role} onInput=${(v) => setGrant({ ...grant, role: v })} hint="Such as DAGL: letters, digits, - and _." required />
      </div>
      <${ErrorNotice} error=${granting.error} />
      ${granted && html`<${Notice} kind="ok"><p>${granted.holder} now holds ${granted.role} for ${granted.party}.</p><//>`}
      <div class="form-actions"><button type="submit" class="primary" disabled=${granting.busy}>Grant role</button></div>
    </form>
    <${Confirm}
      open=${Boolean(revoking)}
      title="Revoke this role?"
      confirm="Yes, revoke the role"
      dismiss="Keep the role"
      busy=${revoke.busy}
      error=${revoke.error}
      onConfirm=${doRevoke}
      onClose=${() => {
        setRevoking(null);
        revoke.clear();
      }}
    >
      ${revoking &&
      html`<p>
        <code>${roles.data?.holder}</code> will no longer hold <code>${revoking.role}</code> for <code>${revoking.party}</code>
        ${revoking.delegated ? " (granted by a delegation: this withdraws that role of the delegation)" : ""}, and loses what the role
        let it read and receive within about a second.
      </p>`}
    <//>
  </section>`;
}

// ------------------------------------------------------------------------------------ delegations

function DelegationsTab() {
  const [form, setForm] = useState({ from: "", to: "", roles: "" });
  const [done, setDone] = useState(null);
  const [confirming, setConfirming] = useState(false);
  const delegate = useAction();
  const withdraw = useAction();
  const set = (name) => (value) => setForm({ ...form, [name]: value });
  const body = () => ({ from: form.from.trim(), to: form.to.trim(), roles: items(form.roles) });
  const words = (location) => ({ from: "From", to: "To", roles: "Roles" })[location.split(".")[0]] || location;

  const submit = async (event) => {
    event.preventDefault();
    setDone(null);
    const result = await delegate.run(() => wordy(async () => (await post("admin/delegations", body())).data, words));
    if (result) setDone({ ...result, withdrawn: false });
  };
  const doWithdraw = async () => {
    const request = body();
    const result = await withdraw.run(() => wordy(() => call("admin/delegations", { method: "DELETE", body: request }), words));
    if (!result) return;
    setConfirming(false);
    setDone({ ...request, withdrawn: true });
  };

  return html`<section aria-labelledby="delegations-heading">
    <h2 id="delegations-heading">Delegations</h2>
    <p class="hint explain">
      A delegation lets a party act for another: a client company (From) gives its accounting firm (To) roles for itself. Herald stores
      them as roles of To for From, marked delegated: they show under Roles for To. A delegated role and a direct grant of the same role
      for the same party are one record, so withdrawing a delegation also removes such a direct grant.
    </p>
    <form onSubmit=${submit} aria-labelledby="delegations-heading">
      <div class="filters">
        <${Field} label="From" name="from" value=${form.from} onInput=${set("from")} hint="The party that delegates (org:… or person:…)." required />
        <${Field} label="To" name="to" value=${form.to} onInput=${set("to")} hint="Who acts on its behalf." required />
        <${Field} label="Roles" name="roles" value=${form.roles} onInput=${set("roles")} hint="Comma-separated, such as REGNA, DAGL." required />
      </div>
      <${ErrorNotice} error=${delegate.error} />
      ${done &&
      html`<${Notice} kind="ok">
        <p>
          ${done.withdrawn ? "Withdrawn" : "Delegated"}: ${done.roles.join(", ")} from ${done.from} ${done.withdrawn ? "no longer held by" : "to"} ${done.to}.
          <a href=${href("admin", { tab: "roles", holder: done.to })}>See the roles of ${done.to}</a>.
        </p>
      <//>`}
      <div class="form-actions">
        <button type="submit" class="primary" disabled=${delegate.busy}>Delegate</button>
        <button type="button" class="danger" onClick=${() => setConfirming(true)} disabled=${!form.from || !form.to || !items(form.roles).length}>Withdraw delegation</button>
      </div>
    </form>
    <${Confirm}
      open=${confirming}
      title="Withdraw this delegation?"
      confirm="Yes, withdraw"
      dismiss="Keep the delegation"
      busy=${withdraw.busy}
      error=${withdraw.error}
      onConfirm=${doWithdraw}
      onClose=${() => {
        setConfirming(false);
        withdraw.clear();
      }}
    >
      <p><code>${form.to}</code> will no longer hold ${items(form.roles).join(", ")} for <code>${form.from}</code>.</p>
    <//>
  </section>`;
}

// ------------------------------------------------------------------------------------ senders

const EMPTY_SENDERS = { orderer: "", emailAddresses: "", emailDomains: "", smsSenders: "" };

function SendersTab() {
  const list = useLoad(async () => (await get("admin/senders")).data.grants, []);
  const [form, setForm] = useState(EMPTY_SENDERS);
  const [saved, setSaved] = useState(null);
  const [withdrawing, setWithdrawing] = useState(null);
  const save = useAction();
  const withdraw = useAction();
  const set = (name) => (value) => setForm({ ...form, [name]: value });
  const words = (location) =>
    ({ emailAddresses: "Email addresses", emailDomains: "Email domains", smsSenders: "SMS senders" })[location.split(".")[0]] || location;

  const submit = async (event) => {
    event.preventDefault();
    setSaved(null);
    const orderer = form.orderer.trim();
    const body = { emailAddresses: items(form.emailAddresses), emailDomains: items(form.emailDomains), smsSenders: items(form.smsSenders) };
    const result = await save.run(() =>
      wordy(async () => {
        if (!orderer) throw new ApiError(400, { title: "No orderer", detail: "Name the orderer the senders are for.", errors: [{ location: "Orderer", detail: "is required" }] });
        return (await put(`admin/senders/${encodeURIComponent(orderer)}`, body)).data;
      }, words),
    );
    if (!result) return;
    setSaved(result);
    list.reload();
  };
  const edit = (grant) => {
    setSaved(null);
    setForm({
      orderer: grant.orderer,
      emailAddresses: joined(grant.emailAddresses),
      emailDomains: joined(grant.emailDomains),
      smsSenders: joined(grant.smsSenders),
    });
    document.getElementById("senders-form-heading")?.scrollIntoView({ block: "start" });
    document.querySelector("#senders-form input")?.focus();
  };
  const doWithdraw = async () => {
    const done = await withdraw.run(() => del(`admin/senders/${encodeURIComponent(withdrawing.orderer)}`));
    if (!done) return;
    setWithdrawing(null);
    list.reload();
  };

  const columns = [
    { title: "Orderer", cell: (g) => html`<code>${g.orderer}</code>` },
    { title: "Email addresses", cell: (g) => html`<${Chips} values=${g.emailAddresses} />` },
    { title: "Email domains", cell: (g) => html`<${Chips} values=${g.emailDomains} />` },
    { title: "SMS senders", cell: (g) => html`<${Chips} values=${g.smsSenders} />` },
    {
      title: "Actions",
      cell: (g) => html`<div class="page-actions">
        <button type="button" class="secondary" onClick=${() => edit(g)} aria-label=${`Edit the senders of ${g.orderer}`}>Edit</button>
        <button type="button" class="secondary" onClick=${() => setWithdrawing(g)} aria-label=${`Withdraw the senders of ${g.orderer}`}>Withdraw</button>
      </div>`,
    },
  ];

  return html`<section aria-labelledby="senders-heading">
    <div class="page-header">
      <h2 id="senders-heading">Senders</h2>
      <div class="page-actions"><button type="button" class="secondary" onClick=${list.reload} disabled=${list.loading}>Refresh</button></div>
    </div>
    <p class="hint explain">
      Everyone may send from Herald's default email sender and SMS sender name. Any other from address, domain (exactly that domain,
      not its subdomains) or SMS sender an orderer names is refused unless it is granted here.
    </p>
    <${ErrorNotice} error=${list.error} onRetry=${list.reload} />
    ${list.loading && !list.data ? html`<${Loading} what="Loading senders" />` : null}
    ${list.data &&
    html`<${Table}
      caption="Senders granted to orderers"
      columns=${columns}
      rows=${list.data.map((g) => ({ ...g, key: g.orderer }))}
      empty="No orderer was granted senders: everyone sends as Herald's defaults."
    />`}
    <form id="senders-form" onSubmit=${submit} aria-labelledby="senders-form-heading" class="panel">
      <h3 id="senders-form-heading">Grant senders</h3>
      <p class="hint">Replaces everything the orderer may send as.</p>
      <${Field} label="Orderer" name="orderer" value=${form.orderer} onInput=${set("orderer")} hint=${PARTY_HINT} required />
      <div class="columns">
        <${Field} label="Email addresses" name="emailAddresses" rows="3" value=${form.emailAddresses} onInput=${set("emailAddresses")} hint="From addresses, one per line." />
        <${Field} label="Email domains" name="emailDomains" rows="3" value=${form.emailDomains} onInput=${set("emailDomains")} hint="Any address at exactly this domain, one per line." />
        <${Field} label="SMS senders" name="smsSenders" rows="3" value=${form.smsSenders} onInput=${set("smsSenders")} hint="Names or numbers (at most 16 characters), one per line." />
      </div>
      <${ErrorNotice} error=${save.error} />
      ${saved && html`<${Notice} kind="ok"><p>Saved the senders of ${saved.orderer}.</p><//>`}
      <div class="form-actions">
        <button type="submit" class="primary" disabled=${save.busy}>Save senders</button>
        <button type="button" class="secondary" onClick=${() => setForm(EMPTY_SENDERS)}>Clear</button>
      </div>
    </form>
    <${Confirm}
      open=${Boolean(withdrawing)}
      title="Withdraw these senders?"
      confirm="Yes, withdraw the senders"
      dismiss="Keep the senders"
      busy=${withdraw.busy}
      error=${withdraw.error}
      onConfirm=${doWithdraw}
      onClose=${() => {
        setWithdrawing(null);
        withdraw.clear();
      }}
    >
      <p><code>${withdrawing?.orderer}</code> may then send only as Herald's defaults; its orders naming another sender are refused.</p>
    <//>
  </section>`;
}
