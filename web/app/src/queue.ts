// The work queue: the current build's clusters at or above a minimum score, riskiest first,
// 25 a page ("More" follows pageInfo.endCursor; a cursor stays in its build, so pages never
// mix builds). Clicking a row opens the cluster and draws its first member's neighbourhood.
import { gql, isAbort } from './api';
import { can } from './auth';
import { byTestId, clearError, fmtInt, fmtScore, fmtTime, h, reportError, showError } from './dom';
import type { ClusterPage, ClusterRow, EntityKind } from './types';

const PAGE = 25;

export interface QueueHooks {
  openCluster(id: string): void;
  drawMember(kind: EntityKind, id: string): void;
}

let hooks: QueueHooks = { openCluster: () => {}, drawMember: () => {} };
let cursor: string | null = null;
let minScore = 0.6;
let loading = false;
let gen = 0;

function query(): string {
  const latest = can('READ_CASES') ? 'labels(last: 1) { verdict author createdAt }' : '';
  return `query Queue($minScore: Float!, $first: Int!, $after: String) {
  clusters(minScore: $minScore, first: $first, after: $after) {
    buildId totalCount
    edges { node { id ringId score size reasons members(first: 1) { kind id } ${latest} } }
    pageInfo { hasNextPage endCursor }
  }
}`;
}

function header(): void {
  const thead = byTestId('queue').querySelector('thead')!;
  thead.replaceChildren(
    h(
      'tr',
      {},
      h('th', { class: 'num' }, 'Score'),
      h('th', { class: 'num' }, 'Size'),
      h('th', {}, 'Reasons'),
      can('READ_CASES') ? h('th', { class: 'verdict-col' }, 'Verdict') : null,
      h('th', { class: 'ring-col' }, 'Ring'),
    ),
  );
}

function row(c: ClusterRow): HTMLTableRowElement {
  const latest = c.labels?.length ? c.labels[c.labels.length - 1] : undefined;
  const tr = h(
    'tr',
    {
      testid: 'queue-row',
      'data-cluster-id': c.id,
      'data-ring-id': c.ringId,
      tabindex: 0,
      title: `Open cluster ${c.id}`,
    },
    h('td', { class: 'num' }, fmtScore(c.score)),
    h('td', { class: 'num' }, fmtInt(c.size)),
    h('td', { class: 'reasons' }, ...c.reasons.slice(0, 2).map((r) => h('div', {}, r))),
    can('READ_CASES')
      ? h(
          'td',
          {},
          latest
            ? h(
                'span',
                { class: `verdict v-${latest.verdict.toLowerCase()}`, title: `${latest.author}, ${fmtTime(latest.createdAt)}` },
                latest.verdict,
              )
            : '',
        )
      : null,
    // Ring ids are long hashes: the start tells rows apart (CSS cuts it); the whole id on hover.
    h('td', { class: 'ring', title: c.ringId }, c.ringId),
  );
  const open = () => {
    clearError();
    byTestId('queue')
      .querySelectorAll('tr.active')
      .forEach((r) => r.classList.remove('active'));
    tr.classList.add('active');
    hooks.openCluster(c.id);
    const first = c.members[0];
    if (first) hooks.drawMember(first.kind, first.id);
  };
  tr.addEventListener('click', open);
  tr.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      open();
    }
  });
  return tr;
}

async function loadPage(reset: boolean): Promise<void> {
  if (loading && !reset) return;
  const my = reset ? ++gen : gen;
  loading = true;
  const more = byTestId<HTMLButtonElement>('queue-more');
  const status = document.getElementById('queue-status')!;
  more.disabled = true;
  if (reset) {
    cursor = null;
    header();
    byTestId('queue').querySelector('tbody')!.replaceChildren();
    byTestId('queue-total').textContent = '';
    more.hidden = true;
  }
  status.textContent = 'Loading…';
  try {
    const data = await gql<{ clusters: ClusterPage }>(query(), {
      minScore,
      first: PAGE,
      after: cursor,
    });
    if (my !== gen) return;
    const page = data.clusters;
    const tbody = byTestId('queue').querySelector('tbody')!;
    tbody.append(...page.edges.map((e) => row(e.node)));
    cursor = page.pageInfo.endCursor;
    // Unformatted: the number as the API gave it.
    byTestId('queue-total').textContent = `${page.totalCount} clusters`;
    byTestId('queue-total').dataset.total = String(page.totalCount);
    const hasNext = page.pageInfo.hasNextPage && cursor !== null;
    more.hidden = !hasNext;
    more.disabled = !hasNext;
    status.textContent = page.totalCount
      ? `${fmtInt(tbody.rows.length)} of ${fmtInt(page.totalCount)} shown · build ${page.buildId}`
      : `No cluster scores ${minScore} or more in build ${page.buildId}.`;
  } catch (e) {
    if (my !== gen || isAbort(e)) return;
    status.textContent = 'The queue could not be loaded.';
    more.disabled = !cursor;
    more.hidden = !cursor;
    reportError(e);
  } finally {
    if (my === gen) loading = false;
  }
}

export function reloadQueue(): void {
  void loadPage(true);
}

export function resetQueue(): void {
  gen++;
  loading = false;
  cursor = null;
  byTestId('queue').querySelector('thead')!.replaceChildren();
  byTestId('queue').querySelector('tbody')!.replaceChildren();
  byTestId('queue-total').textContent = '';
  const more = byTestId<HTMLButtonElement>('queue-more');
  more.hidden = true;
  more.disabled = true;
  document.getElementById('queue-status')!.textContent = '';
}

export function initQueue(hk: QueueHooks): void {
  hooks = hk;
  byTestId('queue-more').addEventListener('click', () => void loadPage(false));
  const input = byTestId<HTMLInputElement>('queue-min-score');
  document.getElementById('queue-form')!.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = Number(input.value);
    if (!Number.isFinite(v) || v < 0 || v > 1) {
      showError('The minimum score is a number between 0 and 1.');
      return;
    }
    clearError();
    minScore = v;
    reloadQueue();
  });
  // Changing the number (arrows, or typing then leaving the field) reloads too.
  input.addEventListener('change', () => {
    document.querySelector<HTMLFormElement>('#queue-form')!.requestSubmit();
  });
}
