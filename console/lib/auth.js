// Sign-in with OAuth 2.0 authorization code + PKCE through oidc-client-ts: devhost's issuer on a
// laptop, Microsoft Entra ID in Azure (config.json says which). The console holds only the person's
// own tokens, in this tab's session storage, and has no privileges of its own.
const { UserManager, WebStorageStateStore } = window.oidc;

let manager = null;
let config = null;

export async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`the console's configuration did not load (${response.status})`);
  config = await response.json();
  const home = new URL("./", location.href);
  home.search = "";
  home.hash = "";
  manager = new UserManager({
    authority: config.authority,
    client_id: config.clientId,
    redirect_uri: home.href,
    post_logout_redirect_uri: home.href,
    response_type: "code",
    scope: config.scopes,
    loadUserInfo: false,
    monitorSession: false,
    automaticSilentRenew: false,
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    stateStore: new WebStorageStateStore({ store: window.sessionStorage }),
  });
  return config;
}

export const settings = () => config;

// Completes a sign-in when the authority has just redirected back with ?code=…&state=…, then puts
// the page the person was on back in the address bar.
export async function completeSignIn() {
  const query = new URLSearchParams(location.search);
  if (!query.has("state") || !(query.has("code") || query.has("error"))) return null;
  try {
    const user = await manager.signinRedirectCallback();
    history.replaceState(null, "", location.pathname + (user.state?.hash || "#/"));
    return user;
  } catch (error) {
    history.replaceState(null, "", location.pathname + "#/");
    throw error;
  }
}

export async function currentUser() {
  const user = await manager.getUser();
  return user && !user.expired ? user : null;
}

export async function accessToken() {
  return (await currentUser())?.access_token ?? null;
}

export function signIn() {
  return manager.signinRedirect({ state: { hash: location.hash || "#/" } });
}

export async function signOut() {
  const user = await manager.getUser();
  await manager.removeUser();
  try {
    await manager.signoutRedirect({ id_token_hint: user?.id_token });
  } catch {
    location.assign(location.pathname);
  }
}

// The access token's claims, read only to show who is signed in and which pages apply; Herald
// checks the token itself on every call.
export function claimsOf(user) {
  try {
    const payload = user.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(payload))));
  } catch {
    return {};
  }
}

export function scopesOf(user) {
  const claims = claimsOf(user);
  const scopes = new Set(String(claims.scp || claims.scope || "").split(" ").filter(Boolean));
  for (const role of Array.isArray(claims.roles) ? claims.roles : []) scopes.add(role);
  return scopes;
}
