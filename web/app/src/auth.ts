// Sign-in: the key is validated with `viewer`, which also says what the key's role may do; the
// controls shown follow its capabilities. The key lives in sessionStorage (this tab only,
// gone when the tab closes) and in api.ts's memory; it is never put in a URL.
import { ApiError, gql, MSG_BAD_KEY, messageOf, setApiKey, setUnauthorizedHandler } from './api';
import { byTestId, clearError, h, show } from './dom';
import type { Capability, Viewer } from './types';

const STORAGE_KEY = 'ringscope.key';

const VIEWER_QUERY = `query Viewer { viewer { keyId role name capabilities } }`;

let viewer: Viewer | null = null;

export function currentViewer(): Viewer | null {
  return viewer;
}

export function can(cap: Capability): boolean {
  return viewer?.capabilities.includes(cap) ?? false;
}

interface Hooks {
  signedIn(v: Viewer): void;
  signedOut(): void;
}
let hooks: Hooks = { signedIn: () => {}, signedOut: () => {} };

function storedKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the key then lives for this page only
  }
}

function storeKey(key: string | null): void {
  try {
    if (key === null) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // storage disabled: nothing to keep or remove
  }
}

function signinError(message: string | null): void {
  const el = byTestId('signin-error');
  el.textContent = message ?? '';
  show(el, message !== null);
}

function showSignedIn(v: Viewer): void {
  viewer = v;
  // Created here and removed at sign-out: a signed-out page has no whoami at all.
  document.getElementById('who')!.replaceChildren(
    h('span', { testid: 'whoami', title: `key ${v.keyId}` }, `${v.name} (${v.role})`),
    h('button', { type: 'button', testid: 'signout', onclick: () => signOut() }, 'Sign out'),
  );
  show(document.getElementById('signin-view')!, false);
  show(document.getElementById('workbench')!, true);
  signinError(null);
  hooks.signedIn(v);
}

/** Back to the sign-in form; the key is forgotten. `message` goes in the sign-in error. */
export function signOut(message: string | null = null): void {
  const wasSignedIn = viewer !== null;
  viewer = null;
  storeKey(null);
  setApiKey(null);
  document.getElementById('who')!.replaceChildren();
  show(document.getElementById('workbench')!, false);
  show(document.getElementById('signin-view')!, true);
  clearError();
  signinError(message);
  const input = byTestId<HTMLInputElement>('api-key');
  input.value = '';
  if (wasSignedIn) hooks.signedOut();
  input.focus();
}

async function validate(key: string): Promise<Viewer> {
  const data = await gql<{ viewer: Viewer }>(VIEWER_QUERY, {}, { key, silent401: true });
  return data.viewer;
}

async function submit(): Promise<void> {
  const input = byTestId<HTMLInputElement>('api-key');
  const button = byTestId<HTMLButtonElement>('signin');
  const key = input.value.trim();
  if (!key) {
    signinError('Paste an API key (rsk_…) first.');
    return;
  }
  button.disabled = true;
  button.textContent = 'Signing in…';
  signinError(null);
  try {
    const v = await validate(key);
    storeKey(key);
    setApiKey(key);
    input.value = '';
    showSignedIn(v);
  } catch (e) {
    signinError(e instanceof ApiError && e.kind === 'auth' ? MSG_BAD_KEY : messageOf(e));
  } finally {
    button.disabled = false;
    button.textContent = 'Sign in';
  }
}

export function initAuth(h: Hooks): void {
  hooks = h;
  // A 401 on any later request: the key was revoked or expired mid-session.
  setUnauthorizedHandler(() => {
    if (viewer !== null) signOut(MSG_BAD_KEY);
  });
  document.getElementById('signin-form')!.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void submit();
  });

  const key = storedKey();
  if (!key) {
    show(document.getElementById('signin-view')!, true);
    return;
  }
  // Reload with a key: re-validate it silently; the sign-in form appears only if that fails.
  show(document.getElementById('signin-view')!, false);
  validate(key).then(
    (v) => {
      setApiKey(key);
      showSignedIn(v);
    },
    (e: unknown) => {
      signOut(e instanceof ApiError && e.kind === 'auth' ? MSG_BAD_KEY : messageOf(e));
    },
  );
}
