// A local GraphiQL (4.x: CodeMirror 5, no web workers, no CDN). The API needs a Bearer key,
// which the user pastes into the headers editor; GraphiQL sends those headers with every
// request, introspection included. Headers are never persisted (shouldPersistHeaders false).
import { createGraphiQLFetcher, type Fetcher } from '@graphiql/toolkit';
import { useSchemaStore } from '@graphiql/react';
import { GraphiQL } from 'graphiql';
import { createElement as h, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import 'graphiql/style.css';
import './graphiql.css';

const HEADERS_TEMPLATE = '{"Authorization": "Bearer <paste key>"}';

const DEFAULT_QUERY = `# RingScope's GraphQL API.
# 1. Headers tab (below): replace <paste key>
#    with your API key, rsk_<id>_<secret>.
#    Docs and completion load once it is accepted.
# 2. Run a query: Ctrl-Enter.

query WhoAmI {
  viewer { keyId role name capabilities }
  currentBuild { id finishedAt modelVersion }
}
`;

const toolkitFetcher = createGraphiQLFetcher({ url: '/graphql' });

// While the headers still hold the template, answer locally instead of sending a request the
// server can only refuse (401): the message says what to do.
const fetcher: Fetcher = (params, opts) => {
  const auth = authorizationOf(JSON.stringify(opts?.headers ?? {}));
  if (!auth || auth.includes('<paste key>')) {
    return Promise.resolve({
      errors: [{ message: 'Paste your API key into the Headers tab: {"Authorization": "Bearer rsk_…"}.' }],
    });
  }
  return toolkitFetcher(params, opts);
};

// GraphiQL introspects once on load (with the template, so the first attempt is refused) and
// otherwise only when asked. Re-introspect when a real key appears in the headers, so the docs
// and completion come up as soon as the key is pasted.
let introspect: (() => Promise<void>) | null = null;
let lastAuth = '';
let timer: number | undefined;

function authorizationOf(headers: string): string {
  try {
    const parsed: unknown = JSON.parse(headers);
    if (parsed && typeof parsed === 'object') {
      for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
        if (k.toLowerCase() === 'authorization' && typeof v === 'string') return v.trim();
      }
    }
  } catch {
    // half-typed JSON: wait for the next edit
  }
  return '';
}

function onEditHeaders(value: string): void {
  window.clearTimeout(timer);
  timer = window.setTimeout(() => {
    const auth = authorizationOf(value);
    if (auth && auth !== lastAuth && /^Bearer\s+rsk_\S+$/.test(auth)) {
      lastAuth = auth;
      void introspect?.();
    }
  }, 400);
}

// Rendered inside GraphiQL only to reach its schema store.
function IntrospectHook(): null {
  const fn = useSchemaStore((s) => s.introspect);
  useEffect(() => {
    introspect = fn;
  }, [fn]);
  return null;
}

const root = document.getElementById('graphiql');
if (root) {
  createRoot(root).render(
    h(
      GraphiQL,
      {
        fetcher,
        defaultQuery: DEFAULT_QUERY,
        defaultHeaders: HEADERS_TEMPLATE,
        defaultEditorToolsVisibility: 'headers',
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: false,
        onEditHeaders,
      },
      h(GraphiQL.Footer, null, h(IntrospectHook)),
    ),
  );
}
