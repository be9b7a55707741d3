// The neighbourhood graph: cytoscape.js on a canvas (works in headless chromium without a GPU).
// A search draws a fresh 2-hop neighbourhood laid out in rings by hop (layout.ts: centre in the
// middle, each identifier's accounts fanned out behind it); clicking a node merges its 1-hop
// neighbourhood in, placing only the new nodes in free space just outside the clicked one, so
// what the user was looking at does not move. No animation: a 200-node neighbourhood draws in
// well under 100 ms once the page is warm.
import cytoscape from 'cytoscape';
import type { Core, ElementDefinition, NodeSingular, StylesheetJson } from 'cytoscape';
import { gql } from './api';
import { fmtInt, reportError } from './dom';
import type { EntityKind, NbEdge, NbNode, Neighbourhood, RiskPath } from './types';
import { ENTITY_KINDS } from './types';
import { placeAround, radialLayout } from './layout';

/** Kind colours: a fixed palette (Tableau 10), shown in the legend. */
export const KIND_COLOURS: Record<EntityKind, string> = {
  ACCOUNT: '#4e79a7',
  DEVICE: '#f28e2b',
  PHONE: '#59a14f',
  PAYEE: '#b07aa1',
  IP: '#76b7b2',
  EMAIL: '#edc948',
  ID_DOCUMENT: '#9c755f',
  BANK_CARD: '#ff9da7',
};

const NEIGHBOURHOOD_QUERY = `query Neighbourhood($kind: EntityKind!, $id: ID!, $hops: Int!, $limit: Int!) {
  riskNeighbourhood(kind: $kind, id: $id, hops: $hops, limit: $limit) {
    buildId truncated
    center { key }
    nodesJson edgesJson
    paths { nodes via flaggedAccount riskScore }
  }
}`;

const LIMIT = 200;

export interface GraphHooks {
  /** A node was clicked (or the centre of a search chosen): show it in the side panel. */
  select(node: NbNode): void;
}

let cy: Core | null = null;
let hooks: GraphHooks = { select: () => {} };
let container: HTMLElement;

// What is drawn: node data by key (the API's answer, kept to fill the panel for masked nodes).
const nodes = new Map<string, NbNode>();
const expanded = new Set<string>();
let centreKey: string | null = null;
let paths: RiskPath[] = [];
let pathsOn = false;
let truncated = false;
// Each fresh draw bumps the generation; answers of an older one are dropped.
let generation = 0;
let inflight: AbortController | null = null;

// performance.now() based; lastFetchMs is the request alone (sent to answer parsed), so that
// lastDrawMs - lastFetchMs is what building and laying out the drawing took.
export const timings = { lastDrawMs: 0, lastExpandMs: 0, lastFetchMs: 0 };

function edgeId(e: NbEdge): string {
  return `${e.source}|${e.target}|${e.kind}`;
}

function shortLabel(n: NbNode): string {
  if (n.hub) return `hub · ${fmtInt(n.degree)}`;
  const id = n.id.length > 18 ? `${n.id.slice(0, 17)}…` : n.id;
  return id;
}

function nodeDef(n: NbNode, pos?: { x: number; y: number }): ElementDefinition {
  const def: ElementDefinition = {
    group: 'nodes',
    data: {
      id: n.key,
      kind: n.kind,
      label: shortLabel(n),
      risk: typeof n.riskScore === 'number' ? Math.max(0, Math.min(1, n.riskScore)) : 0,
    },
    classes: [
      n.kind === 'ACCOUNT' ? 'account' : 'identifier',
      n.hub ? 'hub' : '',
      n.flagged ? 'flagged' : '',
      n.masked ? 'masked' : '',
    ]
      .filter(Boolean)
      .join(' '),
  };
  if (pos) def.position = pos;
  return def;
}

function edgeDef(e: NbEdge): ElementDefinition {
  return { group: 'edges', data: { id: edgeId(e), source: e.source, target: e.target } };
}

function style(): StylesheetJson {
  const kindRules = ENTITY_KINDS.filter((k) => k !== 'ACCOUNT').map((k) => ({
    selector: `node[kind = "${k}"]`,
    style: { 'background-color': KIND_COLOURS[k] },
  }));
  return [
    {
      selector: 'node',
      style: {
        label: 'data(label)',
        'font-size': 9,
        'min-zoomed-font-size': 7,
        'text-valign': 'bottom',
        'text-margin-y': 2,
        color: '#333',
        'text-outline-color': '#fff',
        'text-outline-width': 1.5,
        width: 16,
        height: 16,
        'border-width': 1,
        'border-color': '#fff',
      },
    },
    { selector: 'node.identifier', style: { shape: 'round-rectangle', width: 14, height: 14 } },
    ...kindRules,
    // Accounts: darker and bigger the riskier they are.
    {
      selector: 'node.account',
      style: {
        shape: 'ellipse',
        'background-color': 'mapData(risk, 0, 1, #dbe6f1, #1f3f77)',
        width: 'mapData(risk, 0, 1, 14, 26)',
        height: 'mapData(risk, 0, 1, 14, 26)',
        'border-color': KIND_COLOURS.ACCOUNT,
        'border-width': 1.5,
      },
    },
    { selector: 'node.flagged', style: { 'border-color': '#d62728', 'border-width': 4 } },
    {
      selector: 'node.hub',
      style: {
        shape: 'diamond',
        width: 30,
        height: 30,
        'border-style': 'dashed',
        'border-color': '#333',
        'border-width': 2,
        'font-weight': 'bold',
      },
    },
    {
      selector: 'node.centre',
      style: {
        'underlay-color': '#f5c000',
        'underlay-padding': 7,
        'underlay-opacity': 0.55,
        'underlay-shape': 'ellipse',
        'font-weight': 'bold',
        'font-size': 11,
      },
    },
    {
      selector: 'node.picked',
      style: {
        'overlay-color': '#000',
        'overlay-padding': 5,
        'overlay-opacity': 0.18,
      },
    },
    {
      selector: 'edge',
      style: {
        width: 1.2,
        'line-color': '#b6bdc6',
        'curve-style': 'haystack',
        'haystack-radius': 0,
      },
    },
    { selector: '.dim', style: { opacity: 0.2 } },
    {
      selector: 'node.on-path',
      style: {
        'underlay-color': '#ff7f0e',
        'underlay-padding': 6,
        'underlay-opacity': 0.6,
        'underlay-shape': 'ellipse',
      },
    },
    { selector: 'edge.on-path', style: { 'line-color': '#ff7f0e', width: 4, 'z-index': 10 } },
  ];
}

function ensureCy(): Core {
  if (cy) {
    cy.resize(); // the container may have been hidden (signed out) since
    return cy;
  }
  cy = cytoscape({
    container,
    style: style(),
    elements: [],
    minZoom: 0.05,
    maxZoom: 6,
    autounselectify: true,
    boxSelectionEnabled: false,
    // No animation and no motion blur: draws must be quick and deterministic for the tests.
    motionBlur: false,
    textureOnViewport: false,
  });
  cy.on('tap', 'node', (ev) => onTap(ev.target as NodeSingular));
  return cy;
}

function setStatus(text: string): void {
  const status = document.getElementById('graph-status');
  if (status) status.textContent = text;
}

function updateCounts(): void {
  const c = cy;
  container.dataset.nodeCount = String(c ? c.nodes().length : 0);
  container.dataset.edgeCount = String(c ? c.edges().length : 0);
  const status = document.getElementById('graph-status');
  if (status) {
    status.textContent = c && c.nodes().length
      ? `${fmtInt(c.nodes().length)} nodes · ${fmtInt(c.edges().length)} edges` +
        (truncated ? ' · truncated at the node limit' : '')
      : '';
  }
  const empty = document.getElementById('graph-empty');
  if (empty) empty.hidden = !!(c && c.nodes().length);
  const toggle = document.querySelector<HTMLButtonElement>('[data-testid="paths-toggle"]');
  if (toggle) toggle.textContent = `Risk paths (${paths.length})`;
}

async function fetchNeighbourhood(
  kind: EntityKind,
  id: string,
  hops: number,
  signal?: AbortSignal,
): Promise<Neighbourhood | null> {
  const data = await gql<{ riskNeighbourhood: Neighbourhood | null }>(
    NEIGHBOURHOOD_QUERY,
    { kind, id, hops, limit: LIMIT },
    { signal },
  );
  return data.riskNeighbourhood;
}

/**
 * Draw the 2-hop neighbourhood of (kind, id) afresh. Resolves with the centre node, or null
 * when the entity does not exist; rejects (ApiError) on failure, leaving the old graph.
 */
export async function showNeighbourhood(
  kind: EntityKind,
  id: string,
  hops = 2,
): Promise<NbNode | null> {
  inflight?.abort();
  const ctl = new AbortController();
  inflight = ctl;
  const gen = ++generation;
  const t0 = performance.now();
  let nb: Neighbourhood | null;
  setStatus(`Loading the neighbourhood of ${id}…`);
  try {
    nb = await fetchNeighbourhood(kind, id, hops, ctl.signal);
  } finally {
    if (inflight === ctl) {
      inflight = null;
      updateCounts();
    }
  }
  if (gen !== generation) throw new DOMException('superseded', 'AbortError');
  timings.lastFetchMs = performance.now() - t0;
  if (nb === null) return null;

  const c = ensureCy();
  nodes.clear();
  expanded.clear();
  centreKey = nb.center.key;
  paths = nb.paths ?? [];
  truncated = nb.truncated;
  const defs: ElementDefinition[] = [];
  for (const n of nb.nodesJson) {
    if (nodes.has(n.key)) continue;
    nodes.set(n.key, n);
    defs.push(nodeDef(n));
  }
  const seen = new Set<string>();
  for (const e of nb.edgesJson) {
    const eid = edgeId(e);
    if (seen.has(eid) || !nodes.has(e.source) || !nodes.has(e.target)) continue;
    seen.add(eid);
    defs.push(edgeDef(e));
  }
  expanded.add(centreKey);
  const at = radialLayout(nb.nodesJson, nb.edgesJson, centreKey);
  for (const d of defs) {
    if (d.group === 'nodes') d.position = at.get(String(d.data.id)) ?? { x: 0, y: 0 };
  }
  c.batch(() => {
    c.elements().remove();
    c.add(defs);
    c.getElementById(centreKey!).addClass('centre');
  });
  c.fit(undefined, 30);
  applyPaths();
  timings.lastDrawMs = performance.now() - t0;
  updateCounts();
  container.dataset.ready = '1';
  return nodes.get(centreKey) ?? null;
}

/** Merge the 1-hop neighbourhood of a drawn node into the graph. */
async function expand(n: NbNode): Promise<void> {
  if (n.hub || n.masked || expanded.has(n.key)) return;
  expanded.add(n.key);
  const gen = generation;
  const t0 = performance.now();
  let nb: Neighbourhood | null;
  try {
    nb = await fetchNeighbourhood(n.kind, n.id, 1);
  } catch (e) {
    expanded.delete(n.key);
    if (gen === generation) reportError(e);
    return;
  }
  if (gen !== generation || !cy || nb === null) return;
  const c = cy;
  const anchor = c.getElementById(n.key);
  const fresh = nb.nodesJson.filter((m) => !nodes.has(m.key));
  const centre = centreKey ? c.getElementById(centreKey) : c.collection();
  const positions = anchor.nonempty()
    ? placeAround(
        anchor.position(),
        centre.nonempty() ? (centre as NodeSingular).position() : anchor.position(),
        fresh.length,
        c.nodes().map((m) => m.position()),
      )
    : [];
  const defs: ElementDefinition[] = [];
  fresh.forEach((m, i) => {
    nodes.set(m.key, { ...m, hop: (n.hop ?? 0) + m.hop });
    defs.push(nodeDef(m, positions[i]));
  });
  for (const e of nb.edgesJson) {
    if (!nodes.has(e.source) || !nodes.has(e.target)) continue;
    if (c.getElementById(edgeId(e)).nonempty()) continue;
    defs.push(edgeDef(e));
  }
  if (defs.length) {
    c.batch(() => {
      c.add(defs);
    });
    applyPaths();
    // Keep every node reachable by a click: refit only if a new one fell outside the view.
    const ext = c.extent();
    const outside = c.nodes().some((m) => {
      const p = (m as NodeSingular).position();
      return p.x < ext.x1 || p.x > ext.x2 || p.y < ext.y1 || p.y > ext.y2;
    });
    if (outside) c.fit(undefined, 30);
  }
  timings.lastExpandMs = performance.now() - t0;
  updateCounts();
}

function onTap(target: NodeSingular): void {
  const n = nodes.get(target.id());
  if (!n) return;
  markSelected(n.key);
  hooks.select(n);
  // Hubs are never expanded (thousands of accounts); masked values cannot be looked up.
  void expand(n);
}

/** Mark the node as selected in the drawing (the panel is the caller's business). */
export function markSelected(key: string | null): void {
  if (!cy) return;
  cy.nodes('.picked').removeClass('picked');
  if (key) cy.getElementById(key).addClass('picked');
}

// --- risk paths ---

function applyPaths(): void {
  if (!cy) return;
  const c = cy;
  c.batch(() => {
    c.elements().removeClass('on-path dim');
    if (!pathsOn) return;
    const onPath = new Set<string>();
    const pathEdges = c.collection();
    for (const p of paths) {
      p.nodes.forEach((k, i) => {
        onPath.add(k);
        const next = p.nodes[i + 1];
        if (next === undefined) return;
        const a = c.getElementById(k);
        const b = c.getElementById(next);
        if (a.nonempty() && b.nonempty()) pathEdges.merge(a.edgesWith(b));
      });
    }
    const ns = c.nodes().filter((m) => onPath.has(m.id()));
    ns.addClass('on-path');
    pathEdges.addClass('on-path');
    c.elements().not(ns).not(pathEdges).addClass('dim');
  });
}

function setPaths(on: boolean): void {
  pathsOn = on;
  const toggle = document.querySelector<HTMLButtonElement>('[data-testid="paths-toggle"]');
  toggle?.setAttribute('aria-pressed', on ? 'true' : 'false');
  applyPaths();
}

/** Forget everything drawn (sign-out). */
export function resetGraph(): void {
  inflight?.abort();
  generation++;
  nodes.clear();
  expanded.clear();
  centreKey = null;
  paths = [];
  truncated = false;
  setPaths(false);
  cy?.elements().remove();
  delete container.dataset.ready;
  updateCounts();
}

export function nodeData(key: string): NbNode | undefined {
  return nodes.get(key);
}

function legend(): void {
  const el = document.getElementById('legend');
  if (!el) return;
  el.replaceChildren();
  for (const k of ENTITY_KINDS) {
    const item = document.createElement('span');
    item.className = 'lg';
    const sw = document.createElement('i');
    sw.className = k === 'ACCOUNT' ? 'sw round' : 'sw';
    sw.style.background = KIND_COLOURS[k];
    item.append(sw, k === 'ID_DOCUMENT' ? 'ID document' : k === 'BANK_CARD' ? 'bank card' : k.toLowerCase());
    el.append(item);
  }
  const extra: [string, string][] = [
    ['sw round risk', 'account risk (darker = riskier)'],
    ['sw round flagged', 'flagged'],
    ['sw hub', 'hub (not expanded)'],
    ['sw round centre', 'centre'],
  ];
  for (const [cls, text] of extra) {
    const item = document.createElement('span');
    item.className = 'lg';
    const sw = document.createElement('i');
    sw.className = cls;
    item.append(sw, text);
    el.append(item);
  }
}

export function initGraph(h: GraphHooks): void {
  hooks = h;
  container = document.querySelector<HTMLElement>('[data-testid="graph"]')!;
  legend();
  const btn = (id: string, fn: () => void) =>
    document.querySelector(`[data-testid="${id}"]`)!.addEventListener('click', fn);
  const zoomBy = (f: number) => {
    if (!cy) return;
    const z = cy.zoom() * f;
    cy.zoom({ level: z, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } });
  };
  btn('fit', () => cy?.fit(undefined, 30));
  btn('zoom-in', () => zoomBy(1.25));
  btn('zoom-out', () => zoomBy(0.8));
  btn('paths-toggle', () => setPaths(!pathsOn));
  updateCounts();
}

/** Hooks for tests and benchmarks (window.ringscope). */
export const testApi = {
  nodeKeys(): string[] {
    return cy ? cy.nodes().map((n) => n.id()) : [];
  },
  edgeCount(): number {
    return cy ? cy.edges().length : 0;
  },
  renderedPosition(key: string): { x: number; y: number } | null {
    if (!cy) return null;
    const n = cy.getElementById(key);
    if (n.empty()) return null;
    const p = n.renderedPosition();
    return { x: p.x, y: p.y };
  },
  highlighted(): string[] {
    if (!cy || !pathsOn) return [];
    return cy.nodes('.on-path').map((n) => n.id());
  },
  timings,
};
