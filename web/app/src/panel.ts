// The side panel: one entity or one cluster at a time. Queries are built from the key's
// capabilities, so a risk engine's key never asks for verdicts or notes (which would come back
// as "Forbidden" errors). Each load carries a sequence number; an answer for a panel the user
// has already left is dropped.
import { ApiError, gql, isAbort, messageOf } from './api';
import { can } from './auth';
import { noteForm, noteItem, verdictForm, verdictItem } from './actions';
import { byTestId, fmtInt, fmtScore, fmtTime, h, reportError, showError } from './dom';
import type { Cluster, Entity, EntityKind, Explanation, NbNode, Verdict } from './types';

export interface PanelHooks {
  openCluster(id: string): void;
  /** Draw (kind, id)'s neighbourhood and show it here. */
  search(kind: EntityKind, id: string): void;
}

let hooks: PanelHooks = { openCluster: () => {}, search: () => {} };
let seq = 0;

function root(): HTMLElement {
  return byTestId('panel');
}

/** Start a new panel: returns its sequence number; `current(n)` says it is still shown. */
function begin(kind: string, id: string, title: HTMLElement): number {
  const el = root();
  el.dataset.kind = kind;
  el.dataset.id = id;
  el.replaceChildren(title, h('p', { class: 'muted loading' }, 'Loading…'));
  el.scrollTop = 0;
  return ++seq;
}

function current(n: number): boolean {
  return n === seq;
}

function title(kind: string, id: string, masked = false): HTMLElement {
  return h(
    'h2',
    { class: 'panel-title' },
    h('span', { class: 'kind' }, kind === 'CLUSTER' ? 'cluster' : kindName(kind)),
    ' ',
    h('span', { class: 'id' }, id),
    masked ? h('span', { class: 'badge', title: 'masked for your role' }, 'masked') : null,
  );
}

function kindName(kind: string): string {
  return kind.replace('_', ' ').toLowerCase();
}

function field(dl: HTMLElement, label: string, value: string | HTMLElement): void {
  dl.append(h('dt', {}, label), h('dd', {}, value));
}

function section(heading: string, body: HTMLElement, attrs: Record<string, string> = {}): HTMLElement {
  return h('section', { class: 'panel-section', ...attrs }, h('h3', {}, heading), body);
}

function linkButton(text: string, onClick: () => void, title?: string): HTMLButtonElement {
  return h('button', { type: 'button', class: 'link', title, onclick: () => onClick() }, text);
}

function emptyItem(text: string): HTMLLIElement {
  return h('li', { class: 'empty muted' }, text);
}

function failed(n: number, e: unknown): void {
  if (!current(n) || isAbort(e)) return;
  const loading = root().querySelector('.loading');
  if (loading) loading.textContent = messageOf(e);
  reportError(e);
}

// ---------------------------------------------------------------- entities

function entityQuery(kind: EntityKind): string {
  const verdicts = kind === 'ACCOUNT' && can('READ_CASES')
    ? 'verdicts(last: 5) { verdict note author createdAt }'
    : '';
  return `query Entity($kind: EntityKind!, $id: ID!) {
  entity(kind: $kind, id: $id) {
    kind id masked riskScore label createdAt kycLevel degree
    degrees { kind count }
    clusters(first: 10) { id ringId score size }
    ${verdicts}
  }
}`;
}

/** A node clicked in the graph. Masked values cannot be looked up: show what the graph knows. */
export function showNode(n: NbNode): void {
  if (n.masked) {
    showMasked(n);
    return;
  }
  showEntity(n.kind, n.id, n);
}

function showMasked(n: NbNode): void {
  const el = root();
  seq++;
  el.dataset.kind = n.kind;
  el.dataset.id = n.id;
  const dl = h('dl', { class: 'fields', testid: 'entity-fields' });
  field(dl, 'Risk', fmtScore(n.riskScore));
  field(dl, 'Degree', n.hub ? `${fmtInt(n.degree)} (hub)` : fmtInt(n.degree));
  field(dl, 'Hops from centre', String(n.hop));
  el.replaceChildren(
    title(n.kind, n.id, true),
    dl,
    h(
      'p',
      { class: 'muted' },
      'This value is masked for your role, so it cannot be looked up or expanded.',
    ),
  );
}

export function showEntity(kind: EntityKind, id: string, drawn?: NbNode): void {
  const n = begin(kind, id, title(kind, id));
  gql<{ entity: Entity | null }>(entityQuery(kind), { kind, id }).then(
    (data) => {
      if (!current(n)) return;
      if (data.entity === null) {
        const msg = `No ${kind} with id ${id}.`;
        root().querySelector('.loading')!.textContent = msg;
        showError(msg);
        return;
      }
      renderEntity(n, data.entity, drawn);
    },
    (e: unknown) => failed(n, e),
  );
}

function renderEntity(n: number, e: Entity, drawn?: NbNode): void {
  const el = root();
  const dl = h('dl', { class: 'fields', testid: 'entity-fields' });
  field(dl, e.kind === 'ACCOUNT' ? 'Risk score' : 'Riskiest ring', fmtScore(e.riskScore));
  if (drawn?.flagged) field(dl, 'Flagged', 'yes');
  if (e.label) field(dl, 'Known label', e.label);
  if (e.createdAt) field(dl, 'Created', fmtTime(e.createdAt));
  if (e.kycLevel !== null && e.kycLevel !== undefined) field(dl, 'KYC level', String(e.kycLevel));
  field(dl, 'Degree', fmtInt(e.degree) + (drawn?.hub ? ' (hub: not expanded)' : ''));
  if (e.degrees.length) {
    field(
      dl,
      e.kind === 'ACCOUNT' ? 'Identifiers' : 'Accounts',
      e.degrees.map((d) => `${kindName(d.kind)} ${fmtInt(d.count)}`).join(', '),
    );
  }
  const parts: HTMLElement[] = [title(e.kind, e.id, e.masked), dl];

  const clusters = h('ul', { class: 'list', testid: 'entity-clusters' });
  for (const c of e.clusters) {
    clusters.append(
      h(
        'li',
        {},
        linkButton(`ring ${c.ringId}`, () => hooks.openCluster(c.id), c.id),
        h('span', { class: 'meta' }, ` score ${fmtScore(c.score)} · ${fmtInt(c.size)} accounts`),
      ),
    );
  }
  if (!e.clusters.length) clusters.append(emptyItem('In no cluster of the current build.'));
  parts.push(section('Clusters', clusters));

  let verdictList: HTMLElement | null = null;
  if (e.kind === 'ACCOUNT' && can('READ_CASES')) {
    verdictList = h('ul', { class: 'list', testid: 'verdicts' });
    const vs: Verdict[] = e.verdicts ?? [];
    vs.forEach((v) => verdictList!.append(verdictItem(v)));
    if (!vs.length) verdictList.append(emptyItem('No verdicts yet.'));
    parts.push(section('Verdicts', verdictList));
  }
  if (e.kind === 'ACCOUNT') parts.push(explainSection(n, e.id));
  if (e.kind === 'ACCOUNT' && can('WRITE_LABELS')) {
    parts.push(section('Verdict', verdictForm('account', e.id, verdictList), { class: 'panel-section actions' }));
  }
  el.replaceChildren(...parts);
}

// ---------------------------------------------------------------- explain

const EXPLAIN_QUERY = `query Explain($id: ID!) {
  explain(accountId: $id, top: 5) {
    score model modelVersion approximate
    topFeatures { name value contribution meaning }
    identifiers { key kind id masked scoreDrop }
  }
}`;

// explain costs seconds and is rate limited per key (a few at once, six a minute): keep each
// answer for the session, and ask only once the user has stayed on an account a moment.
const explainCache = new Map<string, Explanation | null>();
const EXPLAIN_DELAY_MS = 250;

function explainSection(n: number, accountId: string): HTMLElement {
  const body = h('div', { class: 'explain-body' }, h('p', { class: 'muted' }, 'Working out why…'));
  const sec = section('Why this score', body, { 'data-testid': 'explain' });
  const load = () => {
    body.replaceChildren(h('p', { class: 'muted' }, 'Working out why… (this can take a few seconds)'));
    gql<{ explain: Explanation | null }>(EXPLAIN_QUERY, { id: accountId }).then(
      (data) => {
        explainCache.set(accountId, data.explain);
        if (current(n)) renderExplain(body, data.explain);
      },
      (e: unknown) => {
        if (!current(n) || isAbort(e)) return;
        // Only this section shows the failure: the rest of the panel is fine.
        let msg = messageOf(e);
        if (e instanceof ApiError && e.kind === 'rate') {
          msg = `Explanations are rate-limited for this key: ${msg}`;
        }
        if (e instanceof ApiError && e.kind === 'unavailable') reportError(e);
        body.replaceChildren(
          h('p', { class: 'section-error', role: 'status' }, msg),
          h('button', { type: 'button', onclick: () => load() }, 'Try again'),
        );
      },
    );
  };
  if (explainCache.has(accountId)) {
    renderExplain(body, explainCache.get(accountId) ?? null);
  } else {
    window.setTimeout(() => {
      if (current(n)) load();
    }, EXPLAIN_DELAY_MS);
  }
  return sec;
}

function renderExplain(body: HTMLElement, x: Explanation | null): void {
  if (x === null) {
    body.replaceChildren(h('p', { class: 'muted' }, 'No explanation for this account.'));
    return;
  }
  const head = h(
    'p',
    { class: 'explain-head' },
    `Model score ${fmtScore(x.score)} (${x.model}${x.modelVersion ? ` ${x.modelVersion}` : ''})`,
    x.approximate ? h('span', { class: 'badge', title: 'an identifier was too big to read whole' }, 'approximate') : null,
  );
  const maxC = Math.max(1e-9, ...x.topFeatures.map((f) => Math.abs(f.contribution)));
  const feats = h('ul', { class: 'bars' });
  for (const f of x.topFeatures) {
    const pct = Math.round((Math.abs(f.contribution) / maxC) * 70); // of the row; room for the number
    feats.append(
      h(
        'li',
        { testid: 'explain-feature', title: `${f.name} = ${f.value}` },
        h('div', { class: 'bar-label' }, f.meaning || f.name),
        h(
          'div',
          { class: 'bar-row' },
          h('span', { class: 'bar', style: `width:${pct}%` }),
          h('span', { class: 'bar-value' }, `+${f.contribution.toFixed(2)}`),
        ),
        h('div', { class: 'meta' }, `${f.name} = ${formatValue(f.value)}`),
      ),
    );
  }
  if (!x.topFeatures.length) feats.append(emptyItem('No feature raised the score.'));

  const maxD = Math.max(1e-9, ...x.identifiers.map((i) => Math.abs(i.scoreDrop)));
  const ids = h('ul', { class: 'bars' });
  for (const i of x.identifiers) {
    const pct = Math.round((Math.abs(i.scoreDrop) / maxD) * 70);
    const name = i.masked
      ? h('span', {}, `${kindName(i.kind)} ${i.id}`)
      : linkButton(`${kindName(i.kind)} ${i.id}`, () => hooks.search(i.kind, i.id));
    ids.append(
      h(
        'li',
        { testid: 'explain-identifier' },
        h('div', { class: 'bar-label' }, name),
        h(
          'div',
          { class: 'bar-row' },
          h('span', { class: 'bar drop', style: `width:${pct}%` }),
          h('span', { class: 'bar-value' }, fmtDrop(i.scoreDrop)),
        ),
      ),
    );
  }
  if (!x.identifiers.length) ids.append(emptyItem('No identifier lowers the score when removed.'));
  body.replaceChildren(
    head,
    h('h4', {}, 'What raised it'),
    feats,
    h('h4', {}, 'Identifiers whose removal lowers it'),
    ids,
  );
}

/** A score drop as a signed change of the score: "−0.120"; tiny ones in exponent form. */
function fmtDrop(d: number): string {
  const a = Math.abs(d);
  const s = a === 0 ? '0' : a >= 0.001 ? a.toFixed(3) : a.toExponential(1);
  return d > 0 ? `−${s}` : d < 0 ? `+${s}` : s;
}

function formatValue(v: number): string {
  return Number.isInteger(v) ? fmtInt(v) : v.toFixed(3);
}

// ---------------------------------------------------------------- clusters

function clusterQuery(): string {
  const cases = can('READ_CASES')
    ? `labels(last: 20) { verdict note author createdAt }
    notes(last: 20) { text author createdAt }`
    : '';
  return `query Cluster($id: ID!) {
  cluster(id: $id) {
    id ringId buildId score size density reasons firstSeenBuild firstSeenAt
    members(first: 50) { kind id masked riskScore }
    sharedIdentifiers(first: 20) { kind id masked members }
    history(last: 10) { buildId finishedAt size score }
    ${cases}
  }
}`;
}

export function showCluster(id: string): void {
  const n = begin('CLUSTER', id, title('CLUSTER', id));
  gql<{ cluster: Cluster | null }>(clusterQuery(), { id }).then(
    (data) => {
      if (!current(n)) return;
      if (data.cluster === null) {
        const msg = `No cluster with id ${id}.`;
        root().querySelector('.loading')!.textContent = msg;
        showError(msg);
        return;
      }
      renderCluster(data.cluster);
    },
    (e: unknown) => failed(n, e),
  );
}

function renderCluster(c: Cluster): void {
  const el = root();
  const dl = h('dl', { class: 'fields', testid: 'cluster-fields' });
  field(dl, 'Score', fmtScore(c.score));
  field(dl, 'Size', `${fmtInt(c.size)} accounts`);
  field(dl, 'Density', c.density.toFixed(3));
  field(dl, 'Ring', c.ringId);
  field(dl, 'Build', c.buildId);
  field(dl, 'First seen', `${c.firstSeenBuild}${c.firstSeenAt ? ` (${fmtTime(c.firstSeenAt)})` : ''}`);

  const reasons = h('ul', { class: 'list', testid: 'cluster-reasons' });
  c.reasons.forEach((r) => reasons.append(h('li', {}, r)));
  if (!c.reasons.length) reasons.append(emptyItem('No reasons recorded.'));

  const members = h('ul', { class: 'list members', testid: 'cluster-members' });
  for (const m of c.members) {
    const label = `${m.id}`;
    members.append(
      h(
        'li',
        { 'data-id': m.id },
        m.masked ? h('span', {}, label) : linkButton(label, () => hooks.search(m.kind, m.id), 'Draw this account'),
        h('span', { class: 'meta' }, ` risk ${fmtScore(m.riskScore)}`),
      ),
    );
  }
  const more = c.size > c.members.length ? ` (first ${c.members.length} of ${fmtInt(c.size)})` : '';

  const shared = h('ul', { class: 'list', testid: 'shared-identifiers' });
  for (const s of c.sharedIdentifiers) {
    const label = `${kindName(s.kind)} ${s.id}`;
    shared.append(
      h(
        'li',
        {},
        s.masked ? h('span', {}, label) : linkButton(label, () => hooks.search(s.kind, s.id)),
        h('span', { class: 'meta' }, ` used by ${fmtInt(s.members)} members`),
      ),
    );
  }
  if (!c.sharedIdentifiers.length) shared.append(emptyItem('None recorded.'));

  const history = h(
    'table',
    { class: 'history', testid: 'ring-history' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Build'), h('th', {}, 'Finished'), h('th', {}, 'Size'), h('th', {}, 'Score'))),
  );
  const hb = h('tbody');
  for (const s of c.history) {
    hb.append(
      h(
        'tr',
        {},
        h('td', {}, s.buildId),
        h('td', {}, fmtTime(s.finishedAt)),
        h('td', { class: 'num' }, fmtInt(s.size)),
        h('td', { class: 'num' }, fmtScore(s.score)),
      ),
    );
  }
  history.append(hb);

  const parts: HTMLElement[] = [
    title('CLUSTER', c.id),
    dl,
    section('Why it was flagged', reasons),
    section(`Members${more}`, members),
    section('Shared identifiers', shared),
    section('History across builds', history),
  ];

  let labels: HTMLElement | null = null;
  let notes: HTMLElement | null = null;
  if (can('READ_CASES')) {
    labels = h('ul', { class: 'list', testid: 'cluster-labels' });
    (c.labels ?? []).forEach((v) => labels!.append(verdictItem(v)));
    if (!(c.labels ?? []).length) labels.append(emptyItem('No verdicts on this ring yet.'));
    parts.push(section('Verdicts on the ring', labels));
  }
  if (can('READ_CASES') || can('WRITE_LABELS')) {
    notes = h('ul', { class: 'list', testid: 'notes' });
    (c.notes ?? []).forEach((x) => notes!.append(noteItem(x)));
    if (!(c.notes ?? []).length) notes.append(emptyItem('No case notes yet.'));
    parts.push(section('Case notes', notes));
  }
  if (can('WRITE_LABELS') && notes) {
    parts.push(
      section('Verdict on the ring', verdictForm('cluster', c.id, labels), { class: 'panel-section actions' }),
      section('Add case note', noteForm(c.id, notes), { class: 'panel-section actions' }),
    );
  }
  el.replaceChildren(...parts);
}

export function resetPanel(): void {
  seq++;
  // Answers depend on the key (masked or not): the next key starts afresh.
  explainCache.clear();
  const el = root();
  delete el.dataset.kind;
  delete el.dataset.id;
  el.replaceChildren(h('p', { class: 'muted' }, 'Select a cluster or a node to see it here.'));
}

export function initPanel(hk: PanelHooks): void {
  hooks = hk;
}

