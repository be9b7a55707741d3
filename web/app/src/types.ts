// Shapes of the API's answers, as the workbench asks for them (api/schema.graphql).

export const ENTITY_KINDS = [
  'ACCOUNT',
  'DEVICE',
  'PHONE',
  'PAYEE',
  'IP',
  'EMAIL',
  'ID_DOCUMENT',
  'BANK_CARD',
] as const;
export type EntityKind = (typeof ENTITY_KINDS)[number];

export function isEntityKind(s: string): s is EntityKind {
  return (ENTITY_KINDS as readonly string[]).includes(s);
}

export type Capability =
  | 'READ_SCORES'
  | 'READ_ENTITIES'
  | 'READ_PII'
  | 'READ_CASES'
  | 'WRITE_LABELS'
  | 'MANAGE_KEYS';

export interface Viewer {
  keyId: string;
  role: string;
  name: string;
  capabilities: Capability[];
}

export type VerdictValue = 'FRAUD' | 'LEGIT';

export interface Verdict {
  verdict: VerdictValue;
  note?: string;
  author: string;
  createdAt: string | null;
}

export interface CaseNote {
  text: string;
  author: string;
  createdAt: string | null;
}

export interface ClusterRow {
  id: string;
  ringId: string;
  score: number;
  size: number;
  reasons: string[];
  members: { kind: EntityKind; id: string }[];
  labels?: Verdict[] | null;
}

export interface ClusterPage {
  buildId: string;
  totalCount: number;
  edges: { node: ClusterRow }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** One node of `nodesJson`. */
export interface NbNode {
  key: string;
  kind: EntityKind;
  id: string;
  masked: boolean;
  hop: number;
  degree: number;
  hub: boolean;
  riskScore: number | null;
  label: string | null;
  flagged: boolean;
}

/** One edge of `edgesJson`: source and target are node keys. */
export interface NbEdge {
  source: string;
  target: string;
  kind: EntityKind;
  firstSeen: string | null;
  lastSeen: string | null;
  count: number;
}

export interface RiskPath {
  nodes: string[];
  via: string[];
  flaggedAccount: string;
  riskScore: number | null;
}

export interface Neighbourhood {
  buildId: string | null;
  truncated: boolean;
  center: { key: string };
  nodesJson: NbNode[];
  edgesJson: NbEdge[];
  paths: RiskPath[];
}

export interface ClusterRef {
  id: string;
  ringId: string;
  score: number;
  size: number;
}

export interface Entity {
  kind: EntityKind;
  id: string;
  masked: boolean;
  riskScore: number | null;
  label: string | null;
  createdAt: string | null;
  kycLevel: number | null;
  degree: number;
  degrees: { kind: EntityKind; count: number }[];
  clusters: ClusterRef[];
  verdicts?: Verdict[] | null;
}

export interface Cluster {
  id: string;
  ringId: string;
  buildId: string;
  score: number;
  size: number;
  density: number;
  reasons: string[];
  firstSeenBuild: string;
  firstSeenAt: string | null;
  members: { kind: EntityKind; id: string; masked: boolean; riskScore: number | null }[];
  sharedIdentifiers: { kind: EntityKind; id: string; masked: boolean; members: number }[];
  history: { buildId: string; finishedAt: string | null; size: number; score: number }[];
  labels?: Verdict[] | null;
  notes?: CaseNote[] | null;
}

export interface Explanation {
  score: number;
  model: string;
  modelVersion: string | null;
  approximate: boolean;
  topFeatures: { name: string; value: number; contribution: number; meaning: string }[];
  identifiers: { key: string; kind: EntityKind; id: string; masked: boolean; scoreDrop: number }[];
}
