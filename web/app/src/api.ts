// The one place that talks to the server: POST /graphql (relative URL, same origin), the key
// only ever in the Authorization header. Every failure becomes an ApiError whose message is
// fit to show a person; nothing else (no stack, no raw body) reaches the page.

export type ErrorKind =
  | 'auth' // 401: the key is wrong, revoked or expired
  | 'unavailable' // 503 or Neo4j unavailable: the database cannot be reached
  | 'rate' // 429: explain's per-key budget
  | 'graphql' // 200 with errors (a refused field, a bad argument, a domain error)
  | 'network' // the request never got an answer
  | 'http'; // any other status

export const MSG_BAD_KEY = 'This API key was not accepted (wrong, revoked or expired).';
export const MSG_UNAVAILABLE =
  'RingScope cannot reach its database right now (503); try again shortly.';

export class ApiError extends Error {
  readonly kind: ErrorKind;
  readonly status: number;
  readonly retryAfter: number | null;
  constructor(kind: ErrorKind, message: string, status = 0, retryAfter: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.kind = kind;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

interface GqlError {
  message?: unknown;
}
interface GqlBody<T> {
  data?: T | null;
  errors?: GqlError[];
}

let apiKey: string | null = null;
let onUnauthorized: (() => void) | null = null;

/** The key every request carries from now on (null: none). */
export function setApiKey(key: string | null): void {
  apiKey = key;
}

/** Called once per 401 answer, after the request's own promise is rejected. */
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

// Server messages are short by design (the API clips them at 400 characters), but a proxy
// could answer with anything: keep what is shown short and single-line.
function clip(s: string, max = 300): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function messagesOf(errors: GqlError[] | undefined): string {
  const msgs = (errors ?? [])
    .map((e) => (typeof e?.message === 'string' ? clip(e.message) : ''))
    .filter((m) => m.length > 0);
  return msgs.length ? [...new Set(msgs)].join(' ') : '';
}

function isUnavailableMessage(m: string): boolean {
  return /Neo4j is unavailable/i.test(m);
}

export interface GqlResult<T> {
  data: T | null;
  /** Field errors that came with (partial) data. */
  errors: string;
}

type Opts = { key?: string; signal?: AbortSignal; silent401?: boolean };

// When the database is briefly unreachable the server fails fast for a second (Retry-After: 1)
// and its driver reconnects on the next call, so a query asked again a moment later usually
// succeeds. Queries are asked up to twice more; mutations are sent exactly once.
const RETRIES = 2;
const MAX_WAIT_S = 5;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = window.setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      window.clearTimeout(t);
      reject(new DOMException('aborted', 'AbortError'));
    });
  });
}

/**
 * Send one operation. Rejects with ApiError on any HTTP failure, and on a 200 whose `errors`
 * left no data. A 200 with data and field errors resolves with both (see `gql` for strict).
 */
export async function gqlPartial<T>(
  query: string,
  variables: Record<string, unknown> = {},
  opts: Opts = {},
): Promise<GqlResult<T>> {
  const mutation = /^\s*mutation\b/.test(query);
  for (let attempt = 0; ; attempt++) {
    try {
      return await send<T>(query, variables, opts);
    } catch (e) {
      if (!(e instanceof ApiError) || e.kind !== 'unavailable' || mutation || attempt >= RETRIES) {
        throw e;
      }
      await sleep(1000 * Math.min(e.retryAfter ?? 1, MAX_WAIT_S), opts.signal);
    }
  }
}

async function send<T>(
  query: string,
  variables: Record<string, unknown>,
  opts: Opts,
): Promise<GqlResult<T>> {
  const key = opts.key ?? apiKey;
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    Accept: 'application/json',
  };
  if (key) headers.Authorization = `Bearer ${key}`;
  let res: Response;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: opts.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError('network', 'Could not reach the RingScope server; check your connection.');
  }
  let body: GqlBody<T> | null = null;
  try {
    body = (await res.json()) as GqlBody<T>;
  } catch {
    body = null;
  }
  const serverMsg = messagesOf(body?.errors);
  if (res.status === 401) {
    const err = new ApiError('auth', MSG_BAD_KEY, 401);
    if (!opts.silent401) queueMicrotask(() => onUnauthorized?.());
    throw err;
  }
  if (res.status === 503) {
    const ra = Number(res.headers.get('Retry-After'));
    throw new ApiError('unavailable', MSG_UNAVAILABLE, 503, Number.isFinite(ra) && ra > 0 ? ra : null);
  }
  if (res.status === 429) {
    const ra = Number(res.headers.get('Retry-After'));
    const retry = Number.isFinite(ra) && ra > 0 ? ra : null;
    throw new ApiError(
      'rate',
      serverMsg || `Too many requests${retry ? `; retry in ${retry} s` : ''}.`,
      429,
      retry,
    );
  }
  if (!res.ok || body === null || typeof body !== 'object') {
    const what = serverMsg ? `: ${serverMsg}` : '.';
    throw new ApiError('http', `The server answered HTTP ${res.status}${what}`, res.status);
  }
  if (serverMsg && isUnavailableMessage(serverMsg)) {
    throw new ApiError('unavailable', MSG_UNAVAILABLE, 503);
  }
  const data = body.data ?? null;
  if (data === null && serverMsg) throw new ApiError('graphql', serverMsg, res.status);
  return { data, errors: serverMsg };
}

/** Like gqlPartial, but any GraphQL error rejects. */
export async function gql<T>(
  query: string,
  variables: Record<string, unknown> = {},
  opts: Opts = {},
): Promise<T> {
  const r = await gqlPartial<T>(query, variables, opts);
  if (r.errors) throw new ApiError('graphql', r.errors, 200);
  if (r.data === null) throw new ApiError('graphql', 'The server sent no data.', 200);
  return r.data;
}

/** A message for anything caught: ApiErrors as they are, anything else generic. */
export function messageOf(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  return 'Something went wrong in the workbench; reload the page if it persists.';
}

export function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}
