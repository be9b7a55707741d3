// `npm test`: the placement guarantees the graph's clicks rely on (node's test runner; bundled
// by esbuild first, as node cannot run TypeScript). Not part of the page's bundle.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { placeAround, radialLayout, SPACING, type Point } from './layout';

interface Tree {
  nodes: { key: string; hop: number }[];
  edges: { source: string; target: string }[];
}

/** A centre, `n1` identifiers, and kids(i) accounts behind identifier i; capped at 200 nodes. */
function tree(n1: number, kids: (i: number) => number, cross = 0, seed = 1): Tree {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const nodes = [{ key: 'c', hop: 0 }];
  const edges: Tree['edges'] = [];
  for (let i = 0; i < n1 && nodes.length < 200; i++) {
    nodes.push({ key: `i${i}`, hop: 1 });
    edges.push({ source: 'c', target: `i${i}` });
    for (let j = 0; j < kids(i) && nodes.length < 200; j++) {
      nodes.push({ key: `a${i}_${j}`, hop: 2 });
      edges.push({ source: `a${i}_${j}`, target: `i${i}` });
      if (i > 0 && rnd() < cross) edges.push({ source: `a${i}_${j}`, target: `i${Math.floor(rnd() * i)}` });
    }
  }
  return { nodes, edges };
}

function minDistance(points: Point[]): number {
  let min = Infinity;
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      min = Math.min(min, Math.hypot(points[i]!.x - points[j]!.x, points[i]!.y - points[j]!.y));
    }
  }
  return min;
}

test('every node is placed, the centre in the middle, none closer than SPACING', () => {
  const shapes: [string, Tree][] = [
    ['200 nodes, even', tree(20, (i) => (i % 7 === 3 ? 0 : 11))],
    ['one identifier with 190 accounts', tree(5, (i) => (i === 0 ? 190 : 1))],
    ['identifiers only', tree(40, () => 0)],
    ['few accounts', tree(26, (i) => (i < 3 ? 3 : 0))],
    ['shared accounts', tree(30, (i) => (i < 2 ? 80 : 2), 0.3)],
    ['centre alone', tree(0, () => 0)],
  ];
  let seed = 7;
  for (let t = 0; t < 200; t++) {
    const n1 = 1 + ((seed = (seed * 48271) % 2147483647) % 60);
    const big = (seed = (seed * 48271) % 2147483647) % 120;
    shapes.push([`random ${t}`, tree(n1, (i) => ((i * 7919 + t) % 3 === 0 ? 0 : big % (i + 5)), 0.2, t + 1)]);
  }
  for (const [name, { nodes, edges }] of shapes) {
    const pos = radialLayout(nodes, edges, 'c');
    assert.equal(pos.size, nodes.length, name);
    assert.deepEqual(pos.get('c'), { x: 0, y: 0 }, name);
    // Neighbours are SPACING apart along their ring; the straight line is a hair shorter.
    assert.ok(minDistance([...pos.values()]) >= SPACING * 0.99, name);
  }
});

test('the same answer is always drawn the same way', () => {
  const { nodes, edges } = tree(20, (i) => i % 9);
  assert.deepEqual([...radialLayout(nodes, edges, 'c')], [...radialLayout(nodes, edges, 'c')]);
});

test('new neighbours of an expanded node go where nothing is', () => {
  const { nodes, edges } = tree(20, () => 9);
  const pos = radialLayout(nodes, edges, 'c');
  const taken = [...pos.values()];
  const anchor = pos.get('a3_4')!;
  const fresh = placeAround(anchor, { x: 0, y: 0 }, 40, taken);
  assert.equal(fresh.length, 40);
  assert.ok(minDistance([...taken, ...fresh]) >= SPACING * 0.9 - 1e-6);
  // Outside the drawing's ring, on the expanded node's side.
  for (const p of fresh) assert.ok(p.x * anchor.x + p.y * anchor.y > 0);
});
