// Wires the modules together. Each module owns one part of the page and exposes plain
// functions; this file decides what happens when (sign-in, sign-out, clicks across parts).
//
// Test contract (tests/test_workbench.py, bench/workbench.py), data-testid:
//   sign-in   api-key, signin, signin-error (shown only on error), whoami ("name (role)") and
//             signout (both exist only while signed in)
//   queue     queue, queue-row (data-cluster-id, data-ring-id), queue-more, queue-total,
//             queue-min-score
//   search    search-kind (options: EntityKind names), search-id, search-go
//   graph     graph (data-node-count, data-edge-count, data-ready="1" after the first draw),
//             fit, zoom-in, zoom-out, paths-toggle
//   panel     panel (data-kind: an EntityKind or CLUSTER, data-id), entity-fields, explain,
//             explain-feature, explain-identifier, cluster-reasons, cluster-members,
//             shared-identifiers, ring-history, verdicts, cluster-labels
//   actions   verdict-select, verdict-note, verdict-save, verdict-saved ("FRAUD by alice"),
//             note-text, note-save, notes
//   errors    error (the banner), error-text
// body[data-app-ready="1"][data-testid="app-ready"] once this script has run; the key is in
// sessionStorage['ringscope.key']; window.ringscope: see testApi in graph.ts.
import './style.css';
import { ApiError } from './api';
import { initAuth } from './auth';
import { clearError, show, showError } from './dom';
import { initGraph, resetGraph, testApi } from './graph';
import { initPanel, resetPanel, showCluster, showNode } from './panel';
import { initQueue, reloadQueue, resetQueue } from './queue';
import { initSearch, search, searchFor } from './search';
import type { Viewer } from './types';

declare global {
  interface Window {
    ringscope: typeof testApi;
  }
}

function openCluster(id: string): void {
  clearError();
  showCluster(id);
}

function signedIn(v: Viewer): void {
  // A key that cannot read entities (none such today) gets the queue only.
  show(document.getElementById('search-box')!, v.capabilities.includes('READ_ENTITIES'));
  reloadQueue();
}

function signedOut(): void {
  resetQueue();
  resetGraph();
  resetPanel();
}

function init(): void {
  initGraph({ select: (n) => showNode(n) });
  initPanel({ openCluster, search: searchFor });
  initQueue({
    openCluster,
    // The panel shows the cluster; the graph shows its first member's neighbourhood.
    drawMember: (kind, id) => void search(kind, id, false),
  });
  initSearch();
  document.getElementById('error-close')!.addEventListener('click', () => clearError());
  initAuth({ signedIn, signedOut });

  // Last line of defence: a request failure nobody caught still shows as a readable message
  // (never a stack trace); anything else stays in the console.
  window.addEventListener('unhandledrejection', (ev) => {
    if (ev.reason instanceof ApiError && ev.reason.kind !== 'auth') showError(ev.reason.message);
  });

  window.ringscope = testApi;
  document.body.dataset.appReady = '1';
  document.body.dataset.testid = 'app-ready';
}

init();
