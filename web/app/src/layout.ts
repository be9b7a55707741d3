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
 * Centre in the middle; hop 1 evenly round an inner ring; hop 2 on an outer band, each node as
 * close as it can be to the angle of its parent (its first neighbour on hop 1), then spread
 * apart just enough. The band has up to three staggered sub-rings (neighbours along the band
 * alternate between them), so 180 second-hop nodes fit on a radius of about 300.
 */
export function radialLayout(nodes: LayoutNode[], edges: LayoutEdge[], centre: string): Map<string, Point> {
  const pos = new Map<string, Point>();
  const hopOf = new Map(nodes.map((n) => [n.key, n.hop]));
  pos.set(centre, { x: 0, y: 0 });

  const ring1 = nodes.filter((n) => n.key !== centre && n.hop <= 1).map((n) => n.key);
  const n1 = ring1.length;
  const start = -Math.PI / 2;
  const r1 = Math.max(110, (1.15 * n1 * SPACING) / (2 * Math.PI));
  const angle1 = new Map<string, number>();
  ring1.forEach((k, i) => {
    const a = start + (2 * Math.PI * i) / Math.max(n1, 1);
    angle1.set(k, a);
    pos.set(k, { x: r1 * Math.cos(a), y: r1 * Math.sin(a) });
  });

  // Each outer node's parent, and its place among the parent's children.
  const children = new Map<string, string[]>(ring1.map((k) => [k, []]));
  const placed = new Set<string>();
  for (const e of edges) {
    for (const [a, b] of [
      [e.source, e.target],
      [e.target, e.source],
    ] as const) {
      if (angle1.has(a) && (hopOf.get(b) ?? 0) >= 2 && !placed.has(b)) {
        placed.add(b);
        children.get(a)!.push(b);
      }
    }
  }
  const orphans = nodes.filter((n) => n.key !== centre && n.hop >= 2 && !placed.has(n.key));
  const n2 = placed.size + orphans.length;
  if (n2 === 0) return pos;

  let r2 = r1 + 90;
  const subRings = Math.min(3, Math.max(1, Math.ceil((1.05 * n2 * SPACING) / (2 * Math.PI * r2))));
  // Room for every node a gap apart plus `subRings` gaps where the band closes (see spread).
  r2 = Math.max(r2, ((1.05 * n2 + subRings) * SPACING) / (2 * Math.PI * subRings));
  // Angular gap between neighbours along the band: on alternate sub-rings, so the nodes on
  // one sub-ring are `subRings` gaps, i.e. SPACING, apart.
  const gap = SPACING / (r2 * subRings);

  const outer: { key: string; want: number }[] = [];
  for (const k of ring1) {
    const kids = children.get(k)!;
    const a = angle1.get(k)!;
    kids.forEach((key, i) => outer.push({ key, want: a + (i - (kids.length - 1) / 2) * gap }));
  }
  orphans.forEach((n, i) => outer.push({ key: n.key, want: start - Math.PI + i * gap }));
  outer.sort((x, y) => x.want - y.want);
  const { angles, rank } = spread(
    outer.map((o) => o.want),
    gap,
    subRings,
  );
  outer.forEach((o, i) => {
    const r = r2 + (rank[i]! % subRings) * SPACING * 1.1;
    pos.set(o.key, { x: r * Math.cos(angles[i]!), y: r * Math.sin(angles[i]!) });
  });
  return pos;
}

/**
 * Angles (sorted) moved as little as possible (least squares) to be at least `gap` apart,
 * round the circle. The circle is cut at the widest gap between wanted angles; on the line that
 * gives, the best placement is an isotonic regression (pool adjacent violators) of
 * want[i] - i * gap. If that wraps round to within `rings` gaps of its start, the nodes share
 * the circle evenly. `rank` is each angle's place along the line from the cut: the caller puts
 * consecutive ranks on different sub-rings, so the last and first must be `rings` gaps apart.
 */
function spread(want: number[], gap: number, rings: number): { angles: number[]; rank: number[] } {
  const n = want.length;
  if (n < 2) return { angles: want.slice(), rank: want.map((_, i) => i) };
  const TAU = 2 * Math.PI;
  let cut = 0; // index of the first angle after the widest gap
  let widest = want[0]! + TAU - want[n - 1]!;
  for (let i = 1; i < n; i++) {
    if (want[i]! - want[i - 1]! > widest) {
      widest = want[i]! - want[i - 1]!;
      cut = i;
    }
  }
  const line: number[] = [];
  for (let i = 0; i < n; i++) {
    const j = (cut + i) % n;
    line.push(want[j]! + (j < cut ? TAU : 0) - i * gap);
  }
  // Pool adjacent violators: blocks of equal value, each the mean of its members.
  const value: number[] = [];
  const size: number[] = [];
  for (const v of line) {
    value.push(v);
    size.push(1);
    while (value.length > 1 && value[value.length - 2]! > value[value.length - 1]!) {
      const v2 = value.pop()!;
      const s2 = size.pop()!;
      const v1 = value.pop()!;
      const s1 = size.pop()!;
      value.push((v1 * s1 + v2 * s2) / (s1 + s2));
      size.push(s1 + s2);
    }
  }
  const fitted: number[] = [];
  value.forEach((v, b) => {
    for (let k = 0; k < size[b]!; k++) fitted.push(v + fitted.length * gap);
  });
  if (fitted[n - 1]! - fitted[0]! > TAU - rings * gap) {
    const step = (TAU - rings * gap) / (n - 1);
    const offset = line.reduce((acc, v, i) => acc + v + i * gap - i * step, 0) / n;
    for (let i = 0; i < n; i++) fitted[i] = offset + i * step;
  }
  const angles = new Array<number>(n);
  const rank = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    angles[(cut + i) % n] = fitted[i]!;
    rank[(cut + i) % n] = i;
  }
  return { angles, rank };
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
