// Node placement, done here rather than by a cytoscape layout: a neighbourhood is a tree of
// hops (centre, its identifiers, their accounts), and a radial tree draws it readably in one
// linear pass. Cytoscape's breadthfirst/concentric put all 180 second-hop nodes on a single ring
// where they overlap, and overlapping nodes cannot be clicked one by one; the force-directed
// layouts are slower and move on every run. Everything here is deterministic: the same answer
// always draws the same way.

export interface Point {
  x: number;
  y: number;
}

/** Distance kept between node centres (model units; the view is fitted afterwards). */
export const SPACING = 32;

interface LayoutNode {
  key: string;
  hop: number;
}
interface LayoutEdge {
  source: string;
  target: string;
}

/**
 * Centre in the middle; hop 2 spread evenly round an outer band, grouped by parent (a node's
 * parent is its first neighbour on hop 1); each hop-1 node on an inner ring at the middle of its
 * own group, nudged apart until SPACING from its ring neighbours. The outer band has up to three
 * staggered sub-rings, so 180 second-hop nodes fit on a radius of about 300.
 */
export function radialLayout(nodes: LayoutNode[], edges: LayoutEdge[], centre: string): Map<string, Point> {
  const pos = new Map<string, Point>();
  const hopOf = new Map(nodes.map((n) => [n.key, n.hop]));
  pos.set(centre, { x: 0, y: 0 });

  const ring1 = nodes.filter((n) => n.key !== centre && n.hop <= 1).map((n) => n.key);
  const ring1Set = new Set(ring1);
  const children = new Map<string, string[]>(ring1.map((k) => [k, []]));
  const placed = new Set<string>();
  for (const e of edges) {
    for (const [a, b] of [
      [e.source, e.target],
      [e.target, e.source],
    ] as const) {
      if (ring1Set.has(a) && (hopOf.get(b) ?? 0) >= 2 && !placed.has(b)) {
        placed.add(b);
        children.get(a)!.push(b);
      }
    }
  }
  // The outer band's order: each hop-1 node's children together, then any without a parent.
  const outer: string[] = [];
  for (const k of ring1) outer.push(...children.get(k)!);
  for (const n of nodes) if (n.key !== centre && n.hop >= 2 && !placed.has(n.key)) outer.push(n.key);

  const n1 = ring1.length;
  const n2 = outer.length;
  const start = -Math.PI / 2;
  const r1 = Math.max(110, (1.25 * n1 * SPACING) / (2 * Math.PI));
  let r2 = r1 + 90;
  const subRings = Math.min(3, Math.max(1, Math.ceil((n2 * SPACING) / (2 * Math.PI * r2))));
  r2 = Math.max(r2, (n2 * SPACING) / (2 * Math.PI * subRings));
  const theta = (j: number) => start + (2 * Math.PI * (j + 0.5)) / n2;
  outer.forEach((key, j) => {
    const r = r2 + (j % subRings) * SPACING * 1.1;
    pos.set(key, { x: r * Math.cos(theta(j)), y: r * Math.sin(theta(j)) });
  });

  // Ring 1: where each node would like to be (the middle of its children, or the boundary
  // between its neighbours' groups), then spread to keep SPACING between neighbours.
  const want: number[] = [];
  if (n2 === 0) {
    ring1.forEach((_, i) => want.push(start + (2 * Math.PI * i) / Math.max(n1, 1)));
  } else {
    let j = 0;
    for (const k of ring1) {
      const c = children.get(k)!.length;
      want.push(c ? (theta(j) + theta(j + c - 1)) / 2 : start + (2 * Math.PI * j) / n2);
      j += c;
    }
  }
  const gap = SPACING / r1;
  const a = spread(want, gap);
  ring1.forEach((k, i) => pos.set(k, { x: r1 * Math.cos(a[i]!), y: r1 * Math.sin(a[i]!) }));
  return pos;
}

/** Angles in increasing order moved as little as simply possible to be `gap` apart (mod 2π). */
function spread(want: number[], gap: number): number[] {
  const n = want.length;
  if (n < 2) return want.slice();
  const a = want.slice();
  for (let i = 1; i < n; i++) a[i] = Math.max(a[i]!, a[i - 1]! + gap);
  // Too far round: pull back from the end (the first one must stay a gap after the last).
  const limit = a[0]! + 2 * Math.PI - gap;
  if (a[n - 1]! > limit) {
    const over = a[n - 1]! - limit;
    for (let i = 0; i < n; i++) a[i] = a[i]! - over / 2;
    a[n - 1] = Math.min(a[n - 1]!, a[0]! + 2 * Math.PI - gap);
    for (let i = n - 2; i >= 0; i--) a[i] = Math.min(a[i]!, a[i + 1]! - gap);
  }
  return a;
}

/**
 * Free spots for `count` new nodes around `anchor`, on an arc facing `away` (a point the arc
 * turns its back on, e.g. the centre), pushed outwards until SPACING from every node in `taken`.
 */
export function placeAround(anchor: Point, away: Point, count: number, taken: Point[]): Point[] {
  const cell = SPACING;
  const grid = new Map<string, Point[]>();
  const cellOf = (p: Point) => `${Math.floor(p.x / cell)},${Math.floor(p.y / cell)}`;
  const add = (p: Point) => {
    const c = cellOf(p);
    const list = grid.get(c);
    if (list) list.push(p);
    else grid.set(c, [p]);
  };
  const free = (p: Point) => {
    const cx = Math.floor(p.x / cell);
    const cy = Math.floor(p.y / cell);
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (const q of grid.get(`${cx + dx},${cy + dy}`) ?? []) {
          if (Math.hypot(q.x - p.x, q.y - p.y) < SPACING * 0.9) return false;
        }
      }
    }
    return true;
  };
  taken.forEach(add);

  const same = anchor.x === away.x && anchor.y === away.y;
  const a0 = same ? -Math.PI / 2 : Math.atan2(anchor.y - away.y, anchor.x - away.x);
  const span = count <= 1 ? 0 : Math.min(Math.PI * 1.2, (count * SPACING) / 80);
  const r0 = Math.max(70, (count * SPACING) / Math.max(span, 1) / 1.5);
  const out: Point[] = [];
  for (let i = 0; i < count; i++) {
    const a = count <= 1 ? a0 : a0 - span / 2 + (span * i) / (count - 1);
    let p: Point = { x: anchor.x + r0 * Math.cos(a), y: anchor.y + r0 * Math.sin(a) };
    for (let step = 1; step < 40 && !free(p); step++) {
      const r = r0 + step * SPACING * 0.6;
      // Alternate a little sideways too, so a blocked line does not stack nodes.
      const b = a + ((step % 2 ? 1 : -1) * SPACING * 0.3) / r;
      p = { x: anchor.x + r * Math.cos(b), y: anchor.y + r * Math.sin(b) };
    }
    add(p);
    out.push(p);
  }
  return out;
}
