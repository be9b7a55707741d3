"""Every Cypher statement RingScope runs, in one place, as parameterised constants.

Values always travel as parameters. The only text assembled here is labels and relationship
types, and only from the fixed table in :mod:`ringscope.kinds`, never from input.
"""

from __future__ import annotations

from typing import LiteralString

from ringscope.kinds import ACCOUNT, DEVICE, KINDS, Kind

# --- schema -----------------------------------------------------------------------------------


def _unique_id(label: str) -> LiteralString:
    name = label.lower() + "_id_unique"
    return f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE"


# Node numbers (the numbering section below): the projection seeks accounts by ranges of them,
# and a cluster's reasons look identifiers up by them.
SEQ_SCHEMA: tuple[LiteralString, ...] = (
    *(
        f"CREATE INDEX {k.label.lower()}_seq IF NOT EXISTS FOR (n:{k.label}) ON (n.seq)"
        for k in KINDS
    ),
    "CREATE CONSTRAINT sequence_id_unique IF NOT EXISTS FOR (n:Sequence) REQUIRE n.id IS UNIQUE",
)

SCHEMA: tuple[LiteralString, ...] = (
    *(_unique_id(k.label) for k in KINDS),
    f"CREATE INDEX account_label IF NOT EXISTS FOR (n:{ACCOUNT.label}) ON (n.label)",
    f"CREATE INDEX account_created_at IF NOT EXISTS FOR (n:{ACCOUNT.label}) ON (n.created_at)",
    # The ingest ledger (see the ingest section below).
    "CREATE CONSTRAINT ingestbatch_id_unique IF NOT EXISTS "
    "FOR (n:IngestBatch) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT ingestfile_id_unique IF NOT EXISTS "
    "FOR (n:IngestFile) REQUIRE n.id IS UNIQUE",
    # Ring-detection builds (see the builds section below).
    "CREATE CONSTRAINT build_id_unique IF NOT EXISTS FOR (n:Build) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT cluster_id_unique IF NOT EXISTS FOR (n:Cluster) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT scorechunk_id_unique IF NOT EXISTS "
    "FOR (n:ScoreChunk) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT currentbuild_id_unique IF NOT EXISTS "
    "FOR (n:CurrentBuild) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT buildlock_id_unique IF NOT EXISTS FOR (n:BuildLock) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX cluster_build_score IF NOT EXISTS FOR (n:Cluster) ON (n.build_id, n.score)",
    "CREATE INDEX cluster_ring_id IF NOT EXISTS FOR (n:Cluster) ON (n.ring_id)",
    "CREATE INDEX scorechunk_build IF NOT EXISTS FOR (n:ScoreChunk) ON (n.build_id)",
    *SEQ_SCHEMA,
)

# --- node numbers ------------------------------------------------------------------------------
# Every account and identifier node carries ``seq``, an integer unique among them, assigned once
# and never changed: the rebuild's projection names nodes by it across transactions and the
# screen table keeps it from one build to the next, where Neo4j promises an internal or element
# id's meaning only within one transaction. Writers mark a node they create ``:Unnumbered``
# (one label write, no shared counter to lock during a load); ``graph.numbering`` numbers the
# marked nodes from the one (:Sequence) counter before each projection. The bulk importer writes
# ``seq`` itself. A node created any other way (an old store, a hand-written statement) is found
# because the counter also keeps how many nodes were numbered, which the count store checks.
UNNUMBERED: LiteralString = "Unnumbered"
SEQUENCE_ID: LiteralString = "nodes"
# The counter, created on first use and write-locked before it is read (the ``locked_at`` write
# takes the lock), so two numbering transactions never hand out the same numbers.
SEQ_LOCK: LiteralString = (
    f"MERGE (c:Sequence {{id: '{SEQUENCE_ID}'}}) ON CREATE SET c.next = 0, c.numbered = 0 "
    "SET c.locked_at = datetime() RETURN c.next AS next, c.numbered AS numbered"
)
SEQ_ADVANCE: LiteralString = f"MATCH (c:Sequence {{id: '{SEQUENCE_ID}'}}) SET c.next = c.next + $k"
_DATA_NODES: LiteralString = " + ".join(f"COUNT {{ (:{k.label}) }}" for k in KINDS)
SEQ_STATE: LiteralString = (
    f"OPTIONAL MATCH (c:Sequence {{id: '{SEQUENCE_ID}'}}) "
    f"RETURN c.numbered AS numbered, {_DATA_NODES} AS nodes, "
    f"EXISTS {{ MATCH (n:{UNNUMBERED}) }} AS marked"
)
# The data nodes there are now (from the count store), recorded as numbered.
SEQ_COUNTED: LiteralString = (
    f"MATCH (c:Sequence {{id: '{SEQUENCE_ID}'}}) SET c.numbered = {_DATA_NODES}"
)


# Numbers for up to $batch nodes of a label, $next, $next + 1, ...: marked ones, or (``_ANY``)
# any without a number, which scans the label (an old store, a node written by hand).
def _seq_number(match: LiteralString) -> LiteralString:
    return (
        match + " WITH n LIMIT $batch "
        "WITH collect(n) AS ns UNWIND range(0, size(ns) - 1) AS i WITH ns[i] AS n, $next + i AS s "
        f"SET n.seq = s REMOVE n:{UNNUMBERED} RETURN count(n) AS k"
    )


SEQ_NUMBER: dict[str, LiteralString] = {
    k.label: _seq_number(f"MATCH (n:{k.label}:{UNNUMBERED})") for k in KINDS
}
SEQ_NUMBER_ANY: dict[str, LiteralString] = {
    k.label: _seq_number(f"MATCH (n:{k.label}) WHERE n.seq IS NULL") for k in KINDS
}

SHOW_CONSTRAINTS: LiteralString = (
    "SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties RETURN name, labelsOrTypes, properties"
)

# --- counts -----------------------------------------------------------------------------------
# One MATCH per label/type so Neo4j answers each from its count store, without a scan.

COUNT_NODES: LiteralString = "\nUNION ALL\n".join(
    f"MATCH (n:{k.label}) RETURN '{k.label}' AS label, count(n) AS n" for k in KINDS
)
COUNT_RELS: LiteralString = "\nUNION ALL\n".join(
    f"MATCH ()-[r:{k.rel}]->() RETURN '{k.rel}' AS type, count(r) AS n"
    for k in KINDS
    if k.rel is not None
)

DELETE_ALL: LiteralString = "MATCH (n) DETACH DELETE n"
AWAIT_INDEXES: LiteralString = "CALL db.awaitIndexes(300)"

# --- ingest -----------------------------------------------------------------------------------
# The loader (ingest/loader.py). Every batch query starts with the ledger guard: it records the
# batch as an (:IngestBatch) node in the same transaction as the batch's writes, and does nothing
# at all when that batch was committed before. That makes re-runs and resumed runs idempotent.

# The layout (batch size, partitions, target classes) a file was first loaded with wins, so a
# resumed run buckets and slices it the same way. A stream's entries (one per identifier kind)
# are merged in one transaction, so they always share one layout.
INGEST_FILE_START: LiteralString = (
    "UNWIND $file_ids AS file_id MERGE (f:IngestFile {id: file_id}) "
    "ON CREATE SET f.file = $file, f.table = $table, f.sha256 = $sha256, "
    "f.batch_size = $batch_size, f.partitions = $partitions, f.classes = $classes, "
    "f.started_at = datetime() "
    "RETURN f.batch_size AS batch_size, f.partitions AS partitions, f.classes AS classes"
)
INGEST_FILE_DONE: LiteralString = (
    "MATCH (f:IngestFile {id: $file_id}) "
    "SET f.batches = $batches, f.completed_at = coalesce(f.completed_at, datetime())"
)
INGEST_COMMITTED: LiteralString = (
    "MATCH (b:IngestBatch) WHERE b.id STARTS WITH $prefix RETURN b.batch AS batch"
)
INGEST_ANY_NODE: LiteralString = "MATCH (n) RETURN id(n) AS node LIMIT 1"
INGEST_KNOWN_ACCOUNTS: LiteralString = (
    f"UNWIND $ids AS id MATCH (a:{ACCOUNT.label} {{id: id}}) RETURN a.id AS id"
)
# Properties the guard sets on each IngestBatch node (subtracted from the reported counters).
INGEST_LEDGER_PROPERTIES = 5
_GUARD = (
    "OPTIONAL MATCH (done:IngestBatch {id: $batch_id}) WITH done WHERE done IS NULL "
    "CREATE (:IngestBatch {id: $batch_id, file: $file_id, batch: $batch_no, rows: size($rows), "
    "committed_at: datetime()}) "
    "WITH 1 AS ignored UNWIND $rows AS raw "
    # Timestamps arrive as epoch milliseconds (see ingest.writer._rows_for).
    "WITH raw {.*, "
    + ", ".join(
        f"{k}: CASE WHEN raw.{k} IS NULL THEN null ELSE datetime({{epochMillis: raw.{k}}}) END"
        for k in ("first_seen", "last_seen", "labelled_at")
    )
    + "} AS row "
)
# Sizes: an identifier's relationships from accounts (models.features.identifier_sizes: every
# kind but payees has one per account, a payee one per account and currency), which Neo4j
# answers from the node's degree store without a traversal (a carrier IP or a big merchant has
# thousands). Flags: emulator device, virtual phone, merchant payee.
_LOCAL_DEGREE: dict[str, LiteralString] = {
    k.rel: f"COUNT {{ (x)<-[:{k.rel}]-() }}" for k in KINDS if k.rel is not None
}
_FLAG_TEST: dict[str, str] = {
    **{k.name: f"x.{k.flag} = true" for k in KINDS if k.flag is not None},
    "payee": "x.kind = 'merchant'",
}
_LOCAL_FLAG: dict[str, LiteralString] = {
    k.rel: "coalesce(" + _FLAG_TEST.get(k.name, "false") + ", false)"
    for k in KINDS
    if k.rel is not None
}


# What a screen's table rows depend on (models/screen_table.py). A build keeps every account's
# feature row; a screen uses an account's row while nothing the row reads has moved since the
# build, which it learns from one property, ``moved_at``, instead of expanding the account's
# relationships (that expansion was three quarters of a payment screen's reads). The writers
# below stamp it (Neo4j's clock) on an account when:
# - they write one of its relationships (a new identifier, a count, a payment's sums);
# - an identifier of at most MARK_DEGREE relationships gains one: every account on it (the
#   kind's "shared" and "busiest" columns read identifier sizes). At most MARK_DEGREE + 1
#   writes, once per new relationship; past that size the identifier is "big", and a screen
#   reads a big identifier's size live (its accounts are never stamped for its growth: a
#   carrier IP gains accounts all day). One that grew past the size since the build stamped
#   its accounts as it crossed it, and accounts joining later are stamped as their own write;
# - a device's, phone's or payee's flag (emulator, virtual, merchant) changes: every account on
#   it.
# A relationship is new where its count was unset before the write (every writer sets it).
MARK_DEGREE: LiteralString = "8"
# Neo4j's clock, which the stamps read, and when the oldest transaction running now began: a
# build takes both before its read (models.screen_table.read_since).
CLOCK_MS: LiteralString = "RETURN datetime().epochMillis AS ms"
OLDEST_TRANSACTION_MS: LiteralString = (
    "SHOW TRANSACTIONS YIELD startTime RETURN min(datetime(startTime)).epochMillis AS ms"
)
_STAMP: LiteralString = "moved_at = datetime()"


def _stamp_on_growth(var: LiteralString, rel: LiteralString) -> LiteralString:
    """Stamp the accounts on identifier ``var`` when this write gave it a relationship of type
    ``rel`` (``created`` bound) and it is still at most MARK_DEGREE + 1 relationships."""
    return (
        f"WITH {var}, created WHERE created "
        f"CALL ({var}) {{ WITH {var} WHERE COUNT {{ ({var})<-[:{rel}]-() }} <= "
        + MARK_DEGREE
        + f" + 1 MATCH ({var})<-[:{rel}]-(o:{ACCOUNT.label}) SET o.{_STAMP} }}"
    )


def _ingest_node(k: Kind) -> LiteralString:
    """One entity row: MERGE by key, properties absent from the row left as they are; where the
    kind has a flag, a change of it stamps the identifier's accounts."""
    merge = f"MERGE (x:{k.label} {{id: row.id}}) ON CREATE SET x:{UNNUMBERED} "
    write = (
        "SET x += row.props "
        "FOREACH (key IN keys(row.ts) | SET x[key] = datetime({epochMillis: row.ts[key]}))"
    )
    if k.rel is None or k.name not in _FLAG_TEST:
        return _GUARD + merge + write
    flag = _LOCAL_FLAG[k.rel]
    return (
        _GUARD
        + merge
        + f"WITH x, row, {flag} AS was "
        + write
        + f" WITH x, was WHERE {flag} <> was "
        f"CALL (x) {{ MATCH (x)<-[:{k.rel}]-(o:{ACCOUNT.label}) SET o.{_STAMP} }}"
    )


# Entity nodes: one MERGE per key; properties absent from the row are left as they are.
INGEST_NODES: dict[str, LiteralString] = {k.label: _ingest_node(k) for k in KINDS}
# Labels: the latest labelled_at wins; at equal times, fraud wins over legit.
INGEST_LABELS: LiteralString = _GUARD + (
    f"MATCH (a:{ACCOUNT.label} {{id: row.account}}) "
    "WITH a, row WHERE a.label IS NULL OR a.labelled_at IS NULL "
    "OR row.labelled_at > a.labelled_at "
    "OR (row.labelled_at = a.labelled_at AND row.label = 'fraud') "
    "SET a.label = row.label, a.labelled_at = row.labelled_at"
)
_SEEN = (
    "r.first_seen = CASE WHEN r.first_seen IS NULL OR row.first_seen < r.first_seen "
    "THEN coalesce(row.first_seen, r.first_seen) ELSE r.first_seen END, "
    "r.last_seen = CASE WHEN r.last_seen IS NULL OR row.last_seen > r.last_seen "
    "THEN coalesce(row.last_seen, r.last_seen) ELSE r.last_seen END"
)
# Observed links (devices, phones, identifiers): one relationship per pair, pre-aggregated.
INGEST_LINKS: dict[str, LiteralString] = {
    k.rel: _GUARD
    + f"MATCH (a:{ACCOUNT.label} {{id: row.account}}) "
    + f"MERGE (x:{k.label} {{id: row.target}}) ON CREATE SET x:{UNNUMBERED} "
    + f"MERGE (a)-[r:{k.rel}]->(x) "
    + "WITH a, x, r, row, r.count IS NULL AS created "
    + "SET r.count = coalesce(r.count, 0) + row.count, "
    + _SEEN
    + f", a.{_STAMP} "
    + _stamp_on_growth("x", k.rel)
    for k in KINDS
    if k.rel is not None
}
# Events (ingest/events.py): the risk engine's events go through the loader's queries above and
# its guard; each recorded event also leaves one ledger entry of its own, which makes recording
# idempotent by event id (the IngestBatch uniqueness constraint settles two concurrent clients).
EVENT_DONE: LiteralString = "UNWIND $ids AS id MATCH (b:IngestBatch {id: id}) RETURN b.id AS id"
EVENT_MARK: LiteralString = (
    "UNWIND $ids AS id CREATE (:IngestBatch {id: id, file: 'events', batch: 0, rows: 1, "
    "committed_at: datetime()})"
)
# An event's account: created with the event's time (and KYC level) when the graph lacks it; an
# existing account is left as it is (an event never rewrites when an account was opened).
EVENT_ACCOUNTS: LiteralString = _GUARD + (
    f"MERGE (n:{ACCOUNT.label} {{id: row.id}}) "
    f"ON CREATE SET n:{UNNUMBERED}, n += row.props, "
    "n.created_at = datetime({epochMillis: row.ts.created_at})"
)
# Payments: one PAID relationship per (account, payee, currency). Money is kept exactly as
# integers of 1/10 000 unit (*_e4) and rendered as decimal text (total_amount, max_amount).
_DECIMAL = "toString({0} / 10000) + '.' + substring(toString(10000 + {0} % 10000), 1)"
INGEST_PAYMENTS: LiteralString = _GUARD + (
    f"MATCH (a:{ACCOUNT.label} {{id: row.account}}) "
    f"MERGE (p:Payee {{id: row.target}}) ON CREATE SET p:{UNNUMBERED} "
    "MERGE (a)-[r:PAID {currency: row.currency}]->(p) "
    "WITH a, p, r, row, r.count IS NULL AS created "
    # coalesce() rather than ON CREATE SET: a new relationship's properties are written once.
    "SET r.count = coalesce(r.count, 0) + row.count, "
    "r.total_amount_e4 = coalesce(r.total_amount_e4, 0) + row.total_e4, "
    "r.max_amount_e4 = CASE WHEN r.max_amount_e4 IS NULL OR row.max_e4 > r.max_amount_e4 "
    "THEN row.max_e4 ELSE r.max_amount_e4 END, "
    "r.round_count = coalesce(r.round_count, 0) + row.round_count, " + _SEEN + ", "
    "a." + _STAMP + " "
    "WITH p, r, created SET r.total_amount = " + _DECIMAL.format("r.total_amount_e4") + ", "
    "r.max_amount = " + _DECIMAL.format("r.max_amount_e4") + " " + _stamp_on_growth("p", "PAID")
)


# All of a recording's writes in one statement (ingest/events.py): the ledger marks, then per
# kind (accounts first, as the loader writes them) that kind's own loader statement above, guard
# included, its ledger parameters scoped by kind ($rows_<kind>, $batch_id_<kind>), skipped when
# the event has no row of that kind. Six statements were six round trips of a risk engine's
# recordEvents, each waiting on the last; the statements, their guard and their ledger entries
# are the same.
def _event_part(kind: LiteralString, query: LiteralString) -> LiteralString:
    scoped = query.replace("$rows", "$rows_" + kind).replace("$batch_id", "$batch_id_" + kind)
    return "CALL () { WITH 1 AS go WHERE size($rows_" + kind + ") > 0 " + scoped + " } "


# An event's details (a device's emulator flag, a phone's virtual one: ingest.events
# DETAIL_FIELDS) are rows of the kinds' entity tables, written by the loader's entity statement
# after the accounts and before the links ($rows_node_<kind>), as the loader writes the files.
EVENT_DETAIL_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k.flag is not None)
EVENT_WRITE: LiteralString = (
    "CALL () { "
    + EVENT_MARK
    + " } "
    + _event_part(ACCOUNT.name, EVENT_ACCOUNTS)
    + "".join(_event_part("node_" + k.name, INGEST_NODES[k.label]) for k in EVENT_DETAIL_KINDS)
    + "".join(
        _event_part(k.name, INGEST_PAYMENTS if k.rel == "PAID" else INGEST_LINKS[k.rel])
        for k in KINDS
        if k.rel is not None
    )
    + "RETURN 1 AS done"
)

# --- detection --------------------------------------------------------------------------------
# The ring detector's projection (models/projection.py). Nodes are named by their numbers
# (``seq``, the node numbers section above), never by internal ids: the projection's reads run in
# several transactions (two reader sessions) and its names outlive them (a cluster's reasons,
# the screen table). Relationships are read per chunk of accounts, a chunk being a range of
# account numbers sought through the ``account_seq`` index, and one record per chunk carries
# its edges as parallel lists, so no per-edge record is ever built. A node created after the
# numbering that preceded the read has no number yet and is left to the next build.

# Accounts come back as one record per $chunk accounts, each field a list: a record per account
# cost 23-43 s at 1M accounts in the driver, the lists 2.5 s (measured).
DETECT_ACCOUNTS: LiteralString = (
    f"MATCH (a:{ACCOUNT.label}) WHERE a.seq IS NOT NULL WITH collect(a) AS accs "
    "UNWIND range(0, size(accs) - 1, $chunk) AS s WITH accs[s..s + $chunk] AS part "
    "RETURN [x IN part | x.seq] AS node, [x IN part | x.id] AS id, "
    "[x IN part | coalesce(x.created_at.epochSeconds, -1)] AS created, "
    "[x IN part | coalesce(toInteger(x.kyc_level), -1)] AS kyc, "
    "[x IN part | CASE x.label WHEN 'fraud' THEN 1 WHEN 'legit' THEN 0 ELSE -1 END] AS label"
)
# The index is named, not left to the planner: a plan made while the index was empty (a fresh
# load, numbered since) scans the label instead, and edges came back in another order, so the
# arrays depended on plan history (a chunk of all accounts against many small ones differed).
# The range seek returns accounts in number order, so any chunking gives the same arrays.
_DETECT_CHUNK = (
    f"MATCH (a:{ACCOUNT.label}) USING INDEX a:{ACCOUNT.label}(seq) WHERE $low <= a.seq <= $high "
)
_DETECT_SEEN = (
    "collect(coalesce(r.first_seen.epochSeconds, -1)) AS first, "
    "collect(coalesce(r.last_seen.epochSeconds, -1)) AS last, "
    "collect(coalesce(toInteger(r.count), 1)) AS count"
)
# Per relationship type: account numbers, identifier numbers, first/last seen, count.
DETECT_LINKS: dict[str, LiteralString] = {
    k.rel: _DETECT_CHUNK
    + f"MATCH (a)-[r:{k.rel}]->(x:{k.label}) "
    # No predicate on x: with one, a plan made from statistics taken before the numbering (the
    # number indexes empty) started from x's index and crossed it with every account (a chunk
    # of 20k accounts timed out in CI). An identifier numbered after the read began is -1.
    + "RETURN collect(a.seq) AS acc, collect(coalesce(x.seq, -1)) AS ident, "
    + _DETECT_SEEN
    + (
        ", collect(coalesce(toInteger(r.round_count), 0)) AS round_count, "
        "collect(coalesce(toFloat(r.total_amount_e4), 0.0)) AS total_e4"
        if k.rel == "PAID"
        else ""
    )
    for k in KINDS
    if k.rel is not None
}
DETECT_EMULATOR_DEVICES: LiteralString = (
    "MATCH (x:Device) WHERE x.is_emulator = true RETURN collect(x.seq) AS nodes"
)
DETECT_VIRTUAL_PHONES: LiteralString = (
    "MATCH (x:Phone) WHERE x.is_virtual = true RETURN collect(x.seq) AS nodes"
)
# Accounts labelled fraud: opened and labelled, epoch seconds (models.risk.label_exposure reads
# the delay from one to the other). Few rows: the label index finds them.
FRAUD_LABEL_TIMES: LiteralString = (
    f"MATCH (a:{ACCOUNT.label}) WHERE a.label = 'fraud' "
    "AND a.created_at IS NOT NULL AND a.labelled_at IS NOT NULL "
    "RETURN collect(a.created_at.epochSeconds) AS created, "
    "collect(a.labelled_at.epochSeconds) AS labelled"
)
DETECT_MERCHANT_PAYEES: LiteralString = (
    "MATCH (x:Payee) WHERE x.kind = 'merchant' RETURN collect(x.seq) AS nodes"
)
# Business ids of a few identifiers (the ones named in a cluster's reasons), by number: one
# index seek per identifier label, since a number alone does not say the kind.
DETECT_IDENTIFIER_IDS: LiteralString = (
    "UNWIND $nodes AS node CALL (node) { "
    + " UNION ".join(
        f"MATCH (x:{k.label} {{seq: node}}) RETURN x.id AS id" for k in KINDS if k.rel is not None
    )
    + " } RETURN node, id"
)
# The same where the kind is known (the whole-graph projection holds each kind's numbers): one
# seek per identifier, not one per label (210k identifiers at 1M: 0.9-1.1 s against 6.3-6.8 s).
DETECT_IDENTIFIER_IDS_OF: dict[str, LiteralString] = {
    k.name: f"UNWIND $nodes AS node MATCH (x:{k.label} {{seq: node}}) RETURN node, x.id AS id"
    for k in KINDS
    if k.rel is not None
}

# A local projection (models.projection.read_local_projection): one account, the accounts that
# share an identifier with it, and all their edges, for explaining or scoring one account without
# reading the whole graph. Identifiers are sized by their distinct accounts in the whole graph.
_ACCOUNT_ROW: LiteralString = (
    "RETURN id(a) AS node, a.id AS id, "
    "coalesce(a.created_at.epochSeconds, -1) AS created, "
    "coalesce(toInteger(a.kyc_level), -1) AS kyc, "
    "CASE a.label WHEN 'fraud' THEN 1 WHEN 'legit' THEN 0 ELSE -1 END AS label"
)
LOCAL_ACCOUNT: LiteralString = f"MATCH (a:{ACCOUNT.label} {{id: $id}}) " + _ACCOUNT_ROW
LOCAL_ACCOUNTS_OF: LiteralString = (
    "UNWIND $nodes AS node MATCH (x) WHERE id(x) = node "
    f"MATCH (x)<-[r]-(a:{ACCOUNT.label}) WHERE type(r) IN $rels "
    "WITH DISTINCT a " + _ACCOUNT_ROW
)


# An expression per relationship type, picked by the type bound to ``rel`` (one expansion of all
# of a node's relationships instead of one per type: a branch per type walked a node's whole
# relationship chain once per type, Neo4j's record store having no per-type index on a node of
# few relationships).
def _by_rel(exprs: dict[str, LiteralString]) -> LiteralString:
    return "CASE rel " + " ".join(f"WHEN '{rel}' THEN {e}" for rel, e in exprs.items()) + " END"


# The account's own identifiers with their sizes and flags, all kinds in one read.
LOCAL_ACCOUNT_IDENTIFIERS: LiteralString = " UNION ALL ".join(
    f"MATCH (a)-[:{k.rel}]->(x:{k.label}) WHERE id(a) = $node WITH DISTINCT x "
    + f"RETURN '{k.rel}' AS rel, id(x) AS node, x.id AS id, {_LOCAL_DEGREE[k.rel]} AS degree, "
    + f"{_LOCAL_FLAG[k.rel]} AS flag"
    for k in KINDS
    if k.rel is not None
)


# Every edge of some accounts (as DETECT_LINKS, one record per kind, all kinds in one read), and
# the size and flag of each identifier they reach that is not in $known. One expansion of each
# account's relationships, grouped by type: a branch per type walked every account's whole
# relationship chain once per type (Neo4j's record store has no per-type index on a node of few
# relationships). A type no account uses returns no record (readers take it as empty).
def _local_links(start: LiteralString) -> LiteralString:
    """Every edge of some accounts, one record per relationship type (``start`` binds ``k``, an
    account's position, and ``a``, the account), with each PAID's currency, and the size and
    flag of each identifier they reach that is not in $known ($rels: the types)."""
    return start + "MATCH (a)-[r]->(x) WHERE type(r) IN $rels " + _links_by_rel("k")


def _links_by_rel(acc: LiteralString) -> LiteralString:
    """The record per relationship type that :func:`_local_links` returns, from rows ``a``,
    ``r``, ``x`` of any type: ``acc`` names the account (its position ``k``, or ``id(a)``); PAID
    edges carry their round count, total and currency. Within a type the edges keep the order
    the rows came in, as the branch per type had them."""
    paid_only = "CASE rel WHEN 'PAID' THEN {0} ELSE [] END AS {0}"
    return (
        "WITH type(r) AS rel, collect("
        + acc
        + ") AS acc, collect(id(x)) AS ident, "
        + _DETECT_SEEN
        + ", collect(coalesce(toInteger(r.round_count), 0)) AS round_count, "
        "collect(coalesce(toFloat(r.total_amount_e4), 0.0)) AS total_e4, "
        "collect(r.currency) AS currency, "
        "[x IN collect(DISTINCT x) WHERE NOT id(x) IN $known] AS xs "
        "RETURN rel, acc, ident, first, last, count, "
        + ", ".join(paid_only.format(c) for c in ("round_count", "total_e4", "currency"))
        + ", [x IN xs | id(x)] AS info_nodes, "
        + f"[x IN xs | {_by_rel(_LOCAL_DEGREE)}] AS degrees, "
        + f"[x IN xs | {_by_rel(_LOCAL_FLAG)}] AS flags"
    )


LOCAL_LINKS: LiteralString = _local_links(
    "UNWIND range(0, size($nodes) - 1) AS k WITH k, $nodes[k] AS node "
    f"MATCH (a:{ACCOUNT.label}) WHERE id(a) = node "
)

# Screening (models/screen.py) reads an event's neighbourhood in two round trips, where explain
# takes four: on the risk engine's decision path every round trip counts.
# 1. SCREEN_START: the current build, the event's account (null when new) with its identifiers,
#    and the event's identifiers that exist (by normalised id, one list parameter per kind),
#    each with its internal id, id, size and flag as above.
_SCREEN_ID = "RETURN '{rel}' AS rel, id(x) AS node, x.id AS xid, {degree} AS degree, {flag} AS flag"
_SCREEN_MINE = " UNION ALL ".join(
    f"MATCH (a)-[:{k.rel}]->(x:{k.label}) WITH DISTINCT x "
    + _SCREEN_ID.format(rel=k.rel, degree=_LOCAL_DEGREE[k.rel], flag=_LOCAL_FLAG[k.rel])
    for k in KINDS
    if k.rel is not None
)
_SCREEN_FOUND = " UNION ALL ".join(
    f"UNWIND $ids_{k.name} AS v MATCH (x:{k.label} {{id: v}}) "
    + _SCREEN_ID.format(rel=k.rel, degree=_LOCAL_DEGREE[k.rel], flag=_LOCAL_FLAG[k.rel])
    for k in KINDS
    if k.rel is not None
)
_SCREEN_ROW = "{rel: rel, node: node, id: xid, degree: degree, flag: flag}"
_SCREEN_ACCOUNT = (
    "{node: id(x), id: x.id, created: coalesce(x.created_at.epochSeconds, -1), "
    "kyc: coalesce(toInteger(x.kyc_level), -1), "
    "label: CASE x.label WHEN 'fraud' THEN 1 WHEN 'legit' THEN 0 ELSE -1 END}"
)


# An account's ring prior in build $build_id (models.features.ring_features): the largest
# label-free score of the build's clusters holding ``var``, 0 in none.
def _ring_of(var: str) -> str:
    return (
        "reduce(rp = 0.0, rv IN [(" + var + ")-[rm:MEMBER_OF]->(rc:Cluster) "
        "WHERE rm.build_id = $build_id | coalesce(rc.unlabelled, 0.0)] | "
        "CASE WHEN rv > rp THEN rv ELSE rp END)"
    )


# A neighbour of a screened event: its ring prior in the build, read only where the model
# reads them ($rings; CASE leaves the other branch unevaluated).
def _screen_ring(var: str) -> str:
    return "CASE WHEN $rings THEN " + _ring_of(var) + " ELSE 0.0 END"


_SCREEN_NEIGHBOUR = _SCREEN_ACCOUNT[:-1] + ", ring: " + _screen_ring("x") + "}"
SCREEN_START: LiteralString = (
    "OPTIONAL MATCH (:CurrentBuild {id: 'current'})-[:POINTS_TO]->(b:Build) "
    f"OPTIONAL MATCH (a:{ACCOUNT.label} {{id: $id}}) "
    "CALL (a) { CALL (a) { " + _SCREEN_MINE + " } "
    "RETURN collect(" + _SCREEN_ROW + ") AS mine } "
    "CALL () { CALL () { " + _SCREEN_FOUND + " } "
    "RETURN collect(" + _SCREEN_ROW + ") AS found } "
    "RETURN b.id AS build_id, "
    "CASE WHEN a IS NULL THEN null ELSE [x IN [a] | " + _SCREEN_ACCOUNT + "][0] END AS account, "
    "mine, found"
)
# An account that a verdict names (its own, or a ring's that lists it) carries this label beside
# its HAS_VERDICT relationship: every writer of HAS_VERDICT sets it, and init_schema sets it on
# accounts linked before the label existed (API_VERDICT_MARK_ACCOUNTS). Readers test the label
# before they look for verdicts, because a typed expansion of a node of few relationships walks
# its whole chain: for a screen reading 1,900 accounts, 47,000 of its 86,000 db hits went to
# finding that most of them have no verdict.
VERDICT_MARK: LiteralString = "HasVerdict"
# Per account, its latest verdict: its own (an account verdict) over any ring's, then by time.
_VERDICT_LATEST = (
    "WITH account, v ORDER BY CASE v.target_kind WHEN 'account' THEN 1 ELSE 0 END, "
    "v.created_at, v.id "
    "WITH account, last(collect(v)) AS v "
)
# 2. SCREEN_NEIGHBOURHOOD: the accounts on the identifiers $expand (and the account $me), by id,
#    with all of their edges as LOCAL_LINKS has them; their latest verdicts (as
#    API_VERDICT_LABELS_FOR, walked from these accounts); the flagged clusters of $build_id
#    reached through the identifiers $open or holding $me, with each identifier's accounts the
#    build knew (models.screen keeps a link only where members of flagged clusters are more than
#    half of them); and those reached in two hops (_SCREEN_SECOND_HOP).
_SCREEN_LINKS = _local_links("UNWIND range(0, size(accs) - 1) AS k WITH k, accs[k] AS a ")


def _build_known(var: str) -> str:
    """The accounts on identifier ``var`` that the build knew: opened by its data's "now"
    ($data_now), so that accounts recorded since (a returning ring's among them) dilute
    nothing."""
    return (
        f"COUNT {{ MATCH ({var})<--(k:{ACCOUNT.label}) WHERE k.created_at IS NULL "
        "OR k.created_at <= datetime({epochSeconds: $data_now}) }"
    )


# Flagged clusters of $build_id reached in two hops, from the event's personal identifiers
# $personal (documents, cards, emails; not hubs) through an account holding one to another
# identifier of that holder's which flagged clusters hold: their members are more than half of
# the accounts the build knew on it (all flagged clusters together: a ring split into several
# flagged clusters holds its collector only together), and it is not a hub ($caps: each
# relationship type's degree cap). A mule ring's document groups sit outside its flagged
# clusters, tied to them by the collector they pay; a family's home IP, shared with one ring
# member, is not held by flagged clusters and links nothing.
_SCREEN_SECOND_HOP = (
    "UNWIND $personal AS node MATCH (x) WHERE id(x) = node "
    f"MATCH (x)<--(h:{ACCOUNT.label}) WHERE id(h) <> $me "
    "MATCH (h)-[r2]->(y) WHERE type(r2) IN $rels AND y <> x "
    "WITH DISTINCT node, y, type(r2) AS rel, COUNT { (y)<--() } AS degree "
    "WHERE degree <= $caps[rel] "
    f"MATCH (y)<--(m:{ACCOUNT.label})-[r:MEMBER_OF]->(c:Cluster) "
    "WHERE r.build_id = $build_id AND c.score >= $min_score "
    "WITH node, y, rel, c, count(DISTINCT m) AS members "
    "WITH node, y, rel, collect({c: c, members: members}) AS held, sum(members) AS flagged "
    "WHERE flagged * 2 > " + _build_known("y") + " "
    "UNWIND held AS h "
    "RETURN node, rel, y.id AS id, h.members AS members, h.c.id AS cluster_id, "
    "h.c.ring_id AS ring_id, h.c.score AS score"
)
_SCREEN_ACCOUNTS = (
    "CALL () { "
    "UNWIND $expand AS node MATCH (x) WHERE id(x) = node "
    f"MATCH (x)<-[r]-(a:{ACCOUNT.label}) WHERE type(r) IN $rels RETURN a "
    f"UNION MATCH (a:{ACCOUNT.label}) WHERE id(a) = $me RETURN a "
    "} "
    "WITH a ORDER BY a.id WITH collect(a) AS accs "
)
# Their latest verdicts, the flagged clusters reached in one hop and in two (see above).
_SCREEN_EVIDENCE = (
    "CALL (accs) { "
    f"UNWIND accs AS a WITH a WHERE a:{VERDICT_MARK} MATCH (a)-[:HAS_VERDICT]->(v:Verdict) "
    "WHERE v.target_kind IN ['account', 'ring'] WITH a.id AS account, v "
    + _VERDICT_LATEST
    + "RETURN collect({account: account, label: v.verdict}) AS verdicts "
    "} "
    "CALL () { CALL () { "
    "UNWIND $open AS node MATCH (x) WHERE id(x) = node "
    "WITH node, x, " + _build_known("x") + " AS known "
    f"MATCH (x)<--(m:{ACCOUNT.label})-[r:MEMBER_OF]->(c:Cluster) "
    "WHERE r.build_id = $build_id AND c.score >= $min_score "
    "RETURN node, known, c.id AS cluster_id, c.ring_id AS ring_id, c.score AS score, "
    "count(DISTINCT m) AS members "
    f"UNION ALL MATCH (m:{ACCOUNT.label})-[r:MEMBER_OF]->(c:Cluster) "
    "WHERE id(m) = $me AND r.build_id = $build_id AND c.score >= $min_score "
    "RETURN -1 AS node, 1 AS known, c.id AS cluster_id, c.ring_id AS ring_id, "
    "c.score AS score, 1 AS members "
    "} RETURN collect({node: node, known: known, cluster_id: cluster_id, ring_id: ring_id, "
    "score: score, members: members}) AS rings } "
    "CALL () { CALL () { " + _SCREEN_SECOND_HOP + " } "
    "RETURN collect({node: node, rel: rel, id: id, members: members, cluster_id: cluster_id, "
    "ring_id: ring_id, score: score}) AS second } "
)
_SCREEN_COLLECT_LINKS = (
    "RETURN collect({rel: rel, acc: acc, ident: ident, first: first, last: last, "
    "count: count, round_count: round_count, total_e4: total_e4, currency: currency, "
    "info_nodes: info_nodes, degrees: degrees, flags: flags}) AS links "
)
SCREEN_NEIGHBOURHOOD: LiteralString = (
    _SCREEN_ACCOUNTS
    + _SCREEN_EVIDENCE
    + "CALL (accs) { CALL (accs) { "
    + _SCREEN_LINKS
    + " } "
    + _SCREEN_COLLECT_LINKS
    + "} RETURN [x IN accs | "
    + _SCREEN_NEIGHBOUR
    + "] AS accounts, verdicts, rings, second, links"
)


# 2'. With the build's feature table (models/screen_table.py): the same accounts, evidence and
#     rings, but of the accounts' edges only those on the identifiers $expand (all of their
#     accounts') and those of $full (the event's account) elsewhere: the other accounts'
#     features come from the table. Each account comes with its ``moved_at`` stamp (the
#     writers' section above; the row is current if it is older than the build's read), one
#     property, where a fingerprint of its relationships and their identifiers' sizes took three
#     quarters of a payment screen's reads.
#     SCREEN_TABLE_DEGREES then reads the sizes of the big identifiers of the accounts whose row
#     is current, by internal id (the build's table keeps them; one list, padded: one plan per
#     size class), each with its number, which the table checks (an id Neo4j reused after a
#     delete names another node). By number, a list per kind, the lists' size classes made a
#     plan per combination; one list with a branch per kind sought every value in every
#     kind's index.
#     SCREEN_TABLE_LINKS then reads the edges of the accounts whose row is stale ($full; those
#     on $skip, the identifiers already read whole, excepted). ``acc`` is the account's
#     internal id here, not a position.
_SCREEN_FULL_EDGES = (
    f"UNWIND $full AS node MATCH (a:{ACCOUNT.label})-[r]->(x) "
    "WHERE id(a) = node AND type(r) IN $rels AND NOT id(x) IN $skip RETURN a, r, x "
)


# The edges on $expand are expanded once, kept as [a, r, x] triples (onx), and give both the
# accounts and their edges: expanding the identifiers again for the edges was a seventh of a
# large neighbourhood's db hits.
_SCREEN_TABLE_ON = (
    "CALL () { UNWIND $expand AS node MATCH (x) WHERE id(x) = node "
    f"MATCH (x)<-[r]-(a:{ACCOUNT.label}) WHERE type(r) IN $rels "
    "RETURN collect([a, r, x]) AS onx } "
    "CALL (onx) { CALL (onx) { UNWIND onx AS t RETURN t[0] AS a "
    f"UNION MATCH (a:{ACCOUNT.label}) WHERE id(a) = $me RETURN a }} "
    "WITH a ORDER BY a.id RETURN collect(a) AS accs } "
)
SCREEN_TABLE_NEIGHBOURHOOD: LiteralString = (
    _SCREEN_TABLE_ON + _SCREEN_EVIDENCE + "CALL (onx) { CALL (onx) { CALL (onx) { "
    "UNWIND onx AS t WITH t[0] AS a, t[1] AS r, t[2] AS x RETURN a, r, x "
    "UNION ALL "
    + _SCREEN_FULL_EDGES
    + "} "
    + _links_by_rel("id(a)")
    + " } "
    + _SCREEN_COLLECT_LINKS
    + "} CALL (accs) { UNWIND accs AS a "
    + "RETURN collect({node: id(a), seq: a.seq, id: a.id, moved: a.moved_at.epochMillis, "
    "created: coalesce(a.created_at.epochSeconds, -1), "
    "kyc: coalesce(toInteger(a.kyc_level), -1), "
    "label: CASE a.label WHEN 'fraud' THEN 1 WHEN 'legit' THEN 0 ELSE -1 END, "
    "ring: " + _screen_ring("a") + "}) AS accounts } "
    "RETURN accounts, verdicts, rings, second, links"
)
SCREEN_TABLE_LINKS: LiteralString = (
    "CALL () { CALL () { "
    + _SCREEN_FULL_EDGES
    + "} "
    + _links_by_rel("id(a)")
    + " } "
    + _SCREEN_COLLECT_LINKS
)
# Each identifier's size is its own kind's relationships, picked by its label (a free test):
# counting every kind's, one degree lookup a kind, was 11,000 of 13,000 db hits for a screen's
# 1,400 big identifiers.
_SIZE_BY_LABEL: LiteralString = " ".join(
    f"WHEN x:{k.label} THEN COUNT {{ (x)<-[:{k.rel}]-() }}" for k in KINDS if k.rel is not None
)
SCREEN_TABLE_DEGREES: LiteralString = (
    "UNWIND $big AS node MATCH (x) WHERE id(x) = node "
    f"RETURN collect(x.seq) AS seqs, collect(CASE {_SIZE_BY_LABEL} END) AS sizes"
)
# A build's big identifiers' internal ids (models.screen_table.build_table), by number.
TABLE_NODE_IDS: dict[str, LiteralString] = {
    k.name: f"UNWIND $nodes AS node MATCH (x:{k.label} {{seq: node}}) RETURN node, id(x) AS id"
    for k in KINDS
    if k.rel is not None
}


# Benchmark helpers (bench/ingest.py): emptying a large graph in batches (auto-commit only),
# and the naive baseline loader's one-row-one-transaction statement.
INGEST_CLEAR_IN_BATCHES: LiteralString = (
    "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
)
# Relationships first, in batches: detaching a hub (a merchant with 100k payers) in one row of
# the batched delete above is one transaction of all its relationships.
CLEAR_RELATIONSHIPS_IN_BATCHES: LiteralString = (
    "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 20000 ROWS"
)
INGEST_NAIVE_DEVICE_ROW: LiteralString = (
    f"MERGE (a:{ACCOUNT.label} {{id: $account}}) ON CREATE SET a:{UNNUMBERED} "
    f"MERGE (d:{DEVICE.label} {{id: $device}}) ON CREATE SET d:{UNNUMBERED} "
    f"MERGE (a)-[r:{DEVICE.rel}]->(d) "
    "SET r.count = coalesce(r.count, 0) + 1, r.last_seen = $seen_at"
)

# --- builds -----------------------------------------------------------------------------------
# Versioned ring-detection results (models/builds/, docs/builds.md). Every query that reads a
# build's clusters filters on `build_id` and a score predicate, so it is answered from the
# composite index (build_id, score). Readers resolve the (:CurrentBuild) pointer first.

BUILD_LOCK: LiteralString = (
    # A write lock on one singleton node serialises build starts (held until the commit).
    "MERGE (l:BuildLock {id: 'builds'}) SET l.locked_at = datetime()"
)
BUILD_RUNNING: LiteralString = (
    "MATCH (b:Build) WHERE b.status = 'running' "
    "RETURN b.id AS id, b.host AS host, b.pid AS pid, "
    "duration.inSeconds(coalesce(b.heartbeat_at, b.started_at), datetime()).seconds AS idle_s"
)
BUILD_MARK_FAILED: LiteralString = (
    "MATCH (b:Build) WHERE b.id IN $ids AND b.status <> 'complete' "
    "SET b.status = 'failed', b.failed_at = datetime(), b.error = $error"
)
BUILD_CREATE: LiteralString = (
    "OPTIONAL MATCH (:CurrentBuild {id: 'current'})-[:POINTS_TO]->(prev:Build) "
    "CREATE (b:Build {id: $build_id, status: 'running', started_at: datetime(), "
    "heartbeat_at: datetime(), model_version: $model_version, previous_build: prev.id, "
    "host: $host, pid: $pid}) "
    "RETURN b.previous_build AS previous_build, b.started_at AS started_at"
)
BUILD_HEARTBEAT: LiteralString = (
    "MATCH (b:Build {id: $build_id}) WHERE b.status = 'running' SET b.heartbeat_at = datetime() "
    "RETURN b.id AS id"
)
# Clusters with their memberships, one UNWIND batch (rows grouped by cluster).
BUILD_WRITE_CLUSTERS: LiteralString = (
    "MATCH (b:Build {id: $build_id}) WHERE b.status = 'running' "
    "UNWIND $rows AS r "
    "CREATE (c:Cluster {id: r.id, ring_id: r.ring_id, build_id: $build_id, score: r.score, "
    "unlabelled: r.unlabelled, "
    "size: r.size, density: r.density, reasons: r.reasons, features: r.features, "
    "key_identifiers: r.key_identifiers, members: r.members, "
    "first_seen_build: r.first_seen_build, "
    "first_seen_at: coalesce(r.first_seen_at, b.started_at)})-[:IN_BUILD]->(b) "
    "WITH c, r "
    "UNWIND range(0, size(r.members) - 1) AS i "
    f"MATCH (a:{ACCOUNT.label} {{id: r.members[i]}}) "
    "CREATE (a)-[:MEMBER_OF {build_id: $build_id, score: r.member_scores[i]}]->(c) "
    "RETURN count(*) AS members"
)
# Account risk scores: sorted runs of accounts, one node per run (see docs/builds.md).
BUILD_WRITE_SCORES: LiteralString = (
    "MATCH (b:Build {id: $build_id}) WHERE b.status = 'running' "
    "UNWIND $rows AS r "
    "CREATE (:ScoreChunk {id: $build_id + '/' + toString(r.chunk), build_id: $build_id, "
    "chunk: r.chunk, lo: r.lo, hi: r.hi, accounts: r.accounts, scores: r.scores, "
    "model_scores: r.model_scores}) "
    "RETURN count(*) AS chunks"
)
# The same chunks written by Spark's executors: a task that Spark retries writes its chunks
# again, so they are merged by id (the chunk's content is a function of the build's scores).
BUILD_MERGE_SCORES: LiteralString = (
    "MATCH (b:Build {id: $build_id}) WHERE b.status = 'running' "
    "UNWIND $rows AS r "
    "MERGE (c:ScoreChunk {id: $build_id + '/' + toString(r.chunk)}) "
    "SET c.build_id = $build_id, c.chunk = r.chunk, c.lo = r.lo, c.hi = r.hi, "
    "c.accounts = r.accounts, c.scores = r.scores, c.model_scores = r.model_scores "
    "RETURN count(*) AS chunks"
)
BUILD_COUNT_CLUSTERS: LiteralString = (
    "MATCH (c:Cluster) WHERE c.build_id = $build_id AND c.score IS NOT NULL RETURN count(c) AS n"
)
BUILD_COUNT_CHUNKS: LiteralString = (
    "MATCH (s:ScoreChunk) WHERE s.build_id = $build_id RETURN count(s) AS n"
)
# The switch: the build is marked complete and the pointer moved in one transaction.
BUILD_FINISH: LiteralString = (
    "MATCH (b:Build {id: $build_id}) WHERE b.status = 'running' "
    "SET b.status = 'complete', b.finished_at = datetime(), b.heartbeat_at = null, b += $props "
    "MERGE (p:CurrentBuild {id: 'current'}) "
    "WITH b, p "
    "OPTIONAL MATCH (p)-[old:POINTS_TO]->() "
    "DELETE old "
    "WITH DISTINCT b, p "
    "CREATE (p)-[:POINTS_TO]->(b) "
    "SET p.build_id = b.id, p.switched_at = b.finished_at "
    "RETURN b.id AS id"
)
BUILD_MARK_DELETING: LiteralString = (
    "MATCH (b:Build {id: $build_id}) "
    "WHERE NOT EXISTS { MATCH (:CurrentBuild)-[:POINTS_TO]->(b) } "
    "SET b.status = 'deleting' RETURN b.id AS id"
)
# Batched deletes: memberships first, then clusters, then score runs, then the build node.
BUILD_DELETE_MEMBERSHIPS: LiteralString = (
    "MATCH (c:Cluster)<-[m:MEMBER_OF]-() WHERE c.build_id = $build_id AND c.score IS NOT NULL "
    "WITH m LIMIT $limit DELETE m RETURN count(*) AS n"
)
BUILD_DELETE_CLUSTERS: LiteralString = (
    "MATCH (c:Cluster) WHERE c.build_id = $build_id AND c.score IS NOT NULL "
    "WITH c LIMIT $limit DETACH DELETE c RETURN count(*) AS n"
)
BUILD_DELETE_CHUNKS: LiteralString = (
    "MATCH (s:ScoreChunk) WHERE s.build_id = $build_id "
    "WITH s LIMIT $limit DELETE s RETURN count(*) AS n"
)
BUILD_DELETE_NODE: LiteralString = (
    "MATCH (b:Build {id: $build_id}) WHERE b.status <> 'complete' "
    "AND NOT EXISTS { MATCH (b)<-[:IN_BUILD]-() } DETACH DELETE b RETURN count(*) AS n"
)
BUILD_CURRENT: LiteralString = (
    "MATCH (:CurrentBuild {id: 'current'})-[:POINTS_TO]->(b:Build) RETURN b {.*} AS build"
)
# Only the id, where that is all a reader needs: the whole node brings its DateTimes, which the
# driver hydrates in pure Python (a tenth of a neighbourhood request's CPU, py-spy).
BUILD_CURRENT_ID: LiteralString = (
    "MATCH (:CurrentBuild {id: 'current'})-[:POINTS_TO]->(b:Build) RETURN b.id AS id"
)
BUILD_GET: LiteralString = "MATCH (b:Build {id: $build_id}) RETURN b {.*} AS build"
BUILD_ALL: LiteralString = (
    "MATCH (b:Build) "
    "OPTIONAL MATCH (p:CurrentBuild {id: 'current'})-[:POINTS_TO]->(b) "
    "RETURN b {.*} AS build, p IS NOT NULL AS current "
    "ORDER BY b.started_at DESC, b.id DESC"
)
BUILD_STATUS: LiteralString = "MATCH (b:Build {id: $build_id}) RETURN b.status AS status"
# Previous build's memberships for stable ring ids: one streamed read of the cluster nodes.
BUILD_MEMBERSHIPS: LiteralString = (
    "MATCH (c:Cluster) WHERE c.build_id = $build_id AND c.score IS NOT NULL "
    "RETURN c.ring_id AS ring_id, c.members AS members, "
    "c.first_seen_build AS first_seen_build, c.first_seen_at AS first_seen_at"
)
# The ring prior (models.features.ring_features): each cluster's label-free score and members,
# every cluster of one build (clusters written before the prior existed have none).
BUILD_RING_PRIOR: LiteralString = (
    "MATCH (c:Cluster) WHERE c.build_id = $build_id AND c.unlabelled IS NOT NULL "
    "RETURN c.members AS members, c.unlabelled AS prior"
)
# The same for the accounts of a local projection (models.explain), by internal id.
LOCAL_RING_PRIORS: LiteralString = (
    "UNWIND $nodes AS node MATCH (a) WHERE id(a) = node RETURN node, " + _ring_of("a") + " AS prior"
)
BUILD_RING_IDS_TAKEN: LiteralString = (
    "UNWIND $ring_ids AS rid MATCH (c:Cluster {ring_id: rid}) RETURN DISTINCT rid AS ring_id"
)
BUILD_CLUSTER_PAGE: LiteralString = (
    "MATCH (c:Cluster) WHERE c.build_id = $build_id AND c.score >= $min_score "
    "AND ($after_score IS NULL OR c.score < $after_score "
    "OR (c.score = $after_score AND c.id > $after_id)) "
    "WITH c ORDER BY c.score DESC, c.id LIMIT $limit "
    "RETURN c {.*} AS cluster"
)
BUILD_CLUSTER_TOTAL: LiteralString = (
    "MATCH (c:Cluster) WHERE c.build_id = $build_id AND c.score >= $min_score RETURN count(c) AS n"
)
BUILD_CLUSTER_BY_ID: LiteralString = "MATCH (c:Cluster {id: $cluster_id}) RETURN c {.*} AS cluster"
BUILD_CLUSTER_BY_RING: LiteralString = (
    "MATCH (c:Cluster {ring_id: $ring_id}) WHERE c.build_id = $build_id RETURN c {.*} AS cluster"
)
# Rings in every stored complete build, for any number of ring ids at once (the API's loader).
BUILD_RING_HISTORY: LiteralString = (
    "UNWIND $ring_ids AS rid MATCH (c:Cluster {ring_id: rid})-[:IN_BUILD]->(b:Build) "
    "WHERE b.status = 'complete' "
    "RETURN rid AS ring_id, b.id AS build_id, b.finished_at AS finished_at, c.size AS size, "
    "c.score AS score ORDER BY b.finished_at, b.id"
)
BUILD_SCORES: LiteralString = (
    "MATCH (s:ScoreChunk) WHERE s.build_id = $build_id "
    "RETURN s.accounts AS accounts, s.scores AS scores ORDER BY s.chunk"
)
BUILD_MODEL_SCORES: LiteralString = (
    "MATCH (s:ScoreChunk) WHERE s.build_id = $build_id AND s.model_scores IS NOT NULL "
    "RETURN s.accounts AS accounts, s.model_scores AS scores ORDER BY s.chunk"
)
# A build's score chunks by range, and some chunks whole (models.builds.ScoreCache).
BUILD_SCORE_BOUNDS: LiteralString = (
    "MATCH (s:ScoreChunk) WHERE s.build_id = $build_id "
    "RETURN s.chunk AS chunk, s.lo AS lo, s.hi AS hi"
)
BUILD_SCORE_CHUNKS: LiteralString = (
    "MATCH (s:ScoreChunk) WHERE s.build_id = $build_id AND s.chunk IN $chunks "
    "RETURN s.chunk AS chunk, s.accounts AS accounts, s.scores AS scores"
)
BUILD_ACCOUNT_SCORES: LiteralString = (
    "UNWIND $ids AS id "
    "MATCH (s:ScoreChunk) WHERE s.build_id = $build_id AND s.lo <= id AND s.hi >= id "
    "RETURN id, [i IN range(0, size(s.accounts) - 1) WHERE s.accounts[i] = id | s.scores[i]] "
    "AS found"
)

# --- api --------------------------------------------------------------------------------------
# The GraphQL API (api/service.py, api/auth.py) and the readers of what it records (the rebuild's
# labels, models/verdicts.py; explanations, models/explain.py). API keys, investigators' verdicts
# and case notes are nodes of their own, keyed by account or ring id and never by build, so they
# survive every rebuild; docs/api.md describes them. graph.schema.init_schema creates API_SCHEMA.

API_SCHEMA: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT apikey_id_unique IF NOT EXISTS FOR (n:ApiKey) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT verdict_id_unique IF NOT EXISTS FOR (n:Verdict) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX verdict_target IF NOT EXISTS FOR (n:Verdict) ON (n.target_kind, n.target_id)",
    "CREATE CONSTRAINT casenote_id_unique IF NOT EXISTS FOR (n:CaseNote) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX casenote_ring IF NOT EXISTS FOR (n:CaseNote) ON (n.ring_id)",
)

API_PING: LiteralString = "RETURN 1 AS ok"

API_KEY_CREATE: LiteralString = (
    "CREATE (k:ApiKey {id: $id, hash: $hash, role: $role, name: $name, "
    "created_at: datetime()}) RETURN k.id AS id"
)
API_KEY_GET: LiteralString = (
    "MATCH (k:ApiKey {id: $id}) "
    "RETURN k.hash AS hash, k.role AS role, k.name AS name, k.revoked_at IS NOT NULL AS revoked"
)
API_KEY_REVOKE: LiteralString = (
    "MATCH (k:ApiKey {id: $id}) SET k.revoked_at = coalesce(k.revoked_at, datetime()) "
    "RETURN k.id AS id"
)
API_KEY_LIST: LiteralString = (
    "MATCH (k:ApiKey) RETURN k.id AS id, k.role AS role, k.name AS name, "
    "k.created_at AS created_at, k.revoked_at AS revoked_at ORDER BY k.created_at, k.id"
)
# The ids of the keys in use (not revoked), at most $limit: the API's negative key cache
# (api.auth.KeyVerifier) refuses an id missing from a fresh list without a read per id.
API_KEY_IDS: LiteralString = (
    "MATCH (k:ApiKey) WHERE k.revoked_at IS NULL WITH k.id AS id LIMIT $limit "
    "RETURN collect(id) AS ids"
)

_API_IDENTIFIERS = tuple(k for k in KINDS if k.rel is not None)
_API_ACCOUNT_RELS = "|".join(k.rel for k in _API_IDENTIFIERS if k.rel is not None)
_API_ACCOUNT_DEGREES = (
    "{" + ", ".join(f"{k.name}: COUNT {{ (n)-[:{k.rel}]->() }}" for k in _API_IDENTIFIERS) + "}"
)
# One entity lookup per kind: key properties and the degree per kind of neighbour.
API_ENTITIES: dict[str, LiteralString] = {
    k.name: f"UNWIND $ids AS id MATCH (n:{k.label} {{id: id}}) RETURN id, n {{.*}} AS props, "
    + (
        f"{_API_ACCOUNT_DEGREES} AS degrees"
        if k.rel is None
        else f"{{account: COUNT {{ (n)<-[:{k.rel}]-() }}}} AS degrees"
    )
    for k in KINDS
}
# Clusters of the given build that an entity belongs to (accounts) or ties (identifiers).
API_ENTITY_CLUSTERS: dict[str, LiteralString] = {
    k.name: (
        f"UNWIND $ids AS id MATCH (:{k.label} {{id: id}})-[m:MEMBER_OF]->(c:Cluster) "
        "WHERE m.build_id = $build_id RETURN id, c {.*} AS cluster ORDER BY c.score DESC"
        if k.rel is None
        else f"UNWIND $ids AS id MATCH (:{k.label} {{id: id}})<-[:{k.rel}]-(:{ACCOUNT.label})"
        "-[m:MEMBER_OF]->(c:Cluster) WHERE m.build_id = $build_id "
        "WITH DISTINCT id, c RETURN id, c {.*} AS cluster ORDER BY c.score DESC"
    )
    for k in KINDS
}


# riskNeighbourhood: the current build's id and flag threshold (null for builds written before it
# was recorded), the start node and its first $hops hops (0, 1 or 2) in one statement; further
# hops one expansion each (API_NB_FROM_*). Identifiers are expanded only when their degree is at
# most $hub, so a hub costs one degree count, not its neighbours. Why one statement: each
# statement cost the server about 0.25 ms of driver work and Neo4j about 0.3 ms, and the start and
# two hops are what nearly every request asks for (docs/api.md, session 29).
#
# The head mirrors api.service.neighbourhood's per-hop rules exactly (tested against the per-hop
# reads, tests/test_neighbourhood_reads.py): hop 1 reads at most $limit rows, each reaching a
# distinct node (one relationship type per identifier label); hop 2 runs only when the start and
# those nodes are fewer than $limit (so every hop-1 row was added: a full hop 1 ends the
# expansion, truncated), from the hop-1 nodes that are not hubs, skipping the nodes held, and
# keeps the first $limit - held + 1 rows (a LIMIT of $limit first, so that no more rows than
# that are projected: without it, one request through well-shared identifiers cost Neo4j twice
# as much). The caller reads two hops here only when no row of hop 1 can be dropped by
# min_score (the start is an account, or min_score is 0).
def _nb_row(src: str, node: str, account_side: bool) -> str:
    """One edge row [src, eid, rel, id, first_ms, last_ms, count, degree, label] reaching
    ``node`` from ``src`` (an element id); ``account_side``: ``node`` is an account."""
    degree = (
        f"COUNT {{ ({node})-[:{_API_ACCOUNT_RELS}]->() }}, {node}.label"
        if account_side
        else f"COUNT {{ ({node})<--() }}, null"
    )
    return (
        f"[{src}, elementId({node}), rel, {node}.id, first_seen.epochMillis, "
        f"last_seen.epochMillis, count, {degree}]"
    )


_NB_AGG = (
    "type(r) AS rel, min(r.first_seen) AS first_seen, max(r.last_seen) AS last_seen, "
    "sum(r.count) AS count"
)


def _nb_head(k: Kind) -> str:
    is_account = k.rel is None
    degree = (
        f"COUNT {{ (n)-[:{_API_ACCOUNT_RELS}]->() }}"
        if is_account
        else f"COUNT {{ (n)<-[:{k.rel}]-() }}"
    )
    hop1_match, hop2_match = (
        (f"(n)-[r:{_API_ACCOUNT_RELS}]->(x)", f"(x)<-[r:{_API_ACCOUNT_RELS}]-(y:{ACCOUNT.label})")
        if is_account
        else (
            f"(n)<-[r:{_API_ACCOUNT_RELS}]-(x:{ACCOUNT.label})",
            f"(x)-[r:{_API_ACCOUNT_RELS}]->(y)",
        )
    )
    frontier = (
        "[h IN hop1 WHERE h.row[7] <= $hub | h.node]" if is_account else "[h IN hop1 | h.node]"
    )
    return (
        "OPTIONAL MATCH (:CurrentBuild {id: 'current'})-[:POINTS_TO]->(b:Build) "
        "WITH b.id AS build_id, b.flag_threshold AS flag_threshold "
        f"MATCH (n:{k.label} {{id: $id}}) "
        f"WITH build_id, flag_threshold, n, elementId(n) AS src, {degree} AS degree "
        "CALL { WITH n, src, degree "
        f"MATCH {hop1_match} WHERE $hops >= 1"
        + ("" if is_account else " AND degree <= $hub")
        + f" WITH src, x, {_NB_AGG} LIMIT $limit "
        f"RETURN collect({{row: {_nb_row('src', 'x', not is_account)}, node: x}}) AS hop1 }} "
        "WITH build_id, flag_threshold, n, src, degree, hop1, "
        f"[src] + [h IN hop1 | h.row[1]] AS seen, {frontier} AS frontier "
        "CALL { WITH seen, frontier WITH seen, frontier WHERE $hops >= 2 AND size(seen) < $limit "
        f"UNWIND frontier AS x MATCH {hop2_match} WHERE NOT elementId(y) IN seen "
        f"WITH elementId(x) AS via, y, {_NB_AGG} LIMIT $limit "
        f"RETURN collect({_nb_row('via', 'y', is_account)}) AS hop2 }} "
        "RETURN build_id, flag_threshold, src AS eid, n.label AS label, degree, "
        "[h IN hop1 | h.row] AS rows1, hop2[0..$limit - size(seen) + 1] AS rows2"
    )


API_NB_HEAD: dict[str, LiteralString] = {k.name: _nb_head(k) for k in KINDS}
# Times travel as epoch milliseconds: the driver's DateTime hydration is pure Python and was a
# quarter of a neighbourhood request's CPU in the server (py-spy --gil, 100k accounts).
# One hop: one record holding one row per edge, each a list [src, eid, rel, id, first_ms,
# last_ms, count, degree, label] (nulls kept), rather than one record per edge: the driver's
# per-record work (the Bolt message, the Record, its key lookups) was a quarter of a two-hop
# neighbourhood's Python time (docs/api.md). The rows and their aggregation are the head's
# (_nb_row, _NB_AGG), written once so that the two reads cannot drift apart.
API_NB_FROM_ACCOUNTS: LiteralString = (
    "UNWIND $eids AS src MATCH (a) WHERE elementId(a) = src "
    f"MATCH (a)-[r:{_API_ACCOUNT_RELS}]->(x) WHERE NOT elementId(x) IN $seen "
    f"WITH src, x, {_NB_AGG} LIMIT $limit "
    f"RETURN collect({_nb_row('src', 'x', False)}) AS rows"
)
API_NB_FROM_IDENTIFIERS: LiteralString = (
    "UNWIND $eids AS src MATCH (x) WHERE elementId(x) = src "
    f"MATCH (x)<-[r:{_API_ACCOUNT_RELS}]-(a:{ACCOUNT.label}) WHERE NOT elementId(a) IN $seen "
    f"WITH src, a, {_NB_AGG} LIMIT $limit "
    f"RETURN collect({_nb_row('src', 'a', True)}) AS rows"
)

# Investigators' verdicts: append-only; an account's verdict is linked to its Account node, a
# ring's verdict keeps the ring id and a snapshot of the members it was given on.
API_VERDICT_ACCOUNT: LiteralString = (
    f"MATCH (a:{ACCOUNT.label} {{id: $target_id}}) SET a:{VERDICT_MARK} "
    "CREATE (a)-[:HAS_VERDICT]->(v:Verdict {id: $id, target_kind: 'account', "
    "target_id: $target_id, verdict: $verdict, note: $note, author: $author, key_id: $key_id, "
    "build_id: $build_id, members: [$target_id], created_at: datetime()}) "
    "RETURN v {.*} AS verdict"
)
# A ring's verdict is also linked from each member it names (HAS_VERDICT, as an account's own
# verdict is): reading the verdicts of some accounts (explain, screen) then walks from those
# accounts, where scanning every verdict's member list grew with every verdict ever given.
API_VERDICT_RING: LiteralString = (
    "CREATE (v:Verdict {id: $id, target_kind: 'ring', target_id: $target_id, "
    "verdict: $verdict, note: $note, author: $author, key_id: $key_id, build_id: $build_id, "
    "members: $members, created_at: datetime()}) "
    "WITH v CALL (v) { UNWIND $members AS member "
    f"MATCH (a:{ACCOUNT.label} {{id: member}}) MERGE (a)-[:HAS_VERDICT]->(v) "
    f"SET a:{VERDICT_MARK} }} "
    "RETURN v {.*} AS verdict"
)
# Ring verdicts written before they were linked from their members (idempotent: init_schema runs
# it; a verdict already linked, or none of whose members exist, is left as it is).
API_VERDICT_LINK_MEMBERS: LiteralString = (
    "MATCH (v:Verdict {target_kind: 'ring'}) WHERE NOT EXISTS { (v)<-[:HAS_VERDICT]-() } "
    "CALL (v) { UNWIND v.members AS member "
    f"MATCH (a:{ACCOUNT.label} {{id: member}}) MERGE (a)-[:HAS_VERDICT]->(v) "
    f"SET a:{VERDICT_MARK} }} "
    "RETURN count(v) AS verdicts"
)
# Accounts linked to a verdict before VERDICT_MARK existed (idempotent: init_schema runs it;
# it walks from the verdicts, so its cost grows with the verdicts given, not the accounts).
API_VERDICT_MARK_ACCOUNTS: LiteralString = (
    f"MATCH (v:Verdict)<-[:HAS_VERDICT]-(a:{ACCOUNT.label}) WHERE NOT a:{VERDICT_MARK} "
    f"SET a:{VERDICT_MARK} RETURN count(DISTINCT a) AS accounts"
)
API_VERDICTS: LiteralString = (
    "UNWIND $ids AS id MATCH (v:Verdict {target_kind: $target_kind, target_id: id}) "
    "RETURN id, v {.*} AS verdict ORDER BY v.created_at, v.id"
)
# A build's clusters per score band, one count: the band is the number of inner bounds the score
# reaches. Served by the (build_id, score) index.
# The data's "now" for explaining against a build that did not record it: the newest account.
API_LATEST_ACCOUNT_CREATED: LiteralString = (
    f"MATCH (a:{ACCOUNT.label}) RETURN max(a.created_at.epochSeconds) AS now"
)
API_CLUSTER_SCORE_BANDS: LiteralString = (
    "MATCH (c:Cluster) WHERE c.build_id = $build_id AND c.score IS NOT NULL "
    "RETURN size([b IN $bounds WHERE c.score >= b]) AS band, count(*) AS n"
)
# The labels the next rebuild trains and evaluates with: per account, the latest account verdict,
# else the latest verdict on a ring the account was a member of when it was given.
API_VERDICT_LABELS: LiteralString = (
    "MATCH (v:Verdict) WHERE v.target_kind IN ['account', 'ring'] "
    "UNWIND v.members AS account " + _VERDICT_LATEST + "RETURN account, v.verdict AS label, "
    "v.created_at AS labelled_at, v.target_kind AS source, v.id AS verdict_id"
)
# The same, for the accounts $ids only, through HAS_VERDICT (API_VERDICT_RING): what explain
# reads for its neighbourhood, in time that does not grow with the verdicts of other accounts.
API_VERDICT_LABELS_FOR: LiteralString = (
    f"UNWIND $ids AS account MATCH (a:{ACCOUNT.label} {{id: account}}) WHERE a:{VERDICT_MARK} "
    "MATCH (a)-[:HAS_VERDICT]->(v:Verdict) WHERE v.target_kind IN ['account', 'ring'] "
    + _VERDICT_LATEST
    + "RETURN account, v.verdict AS label, "
    "v.created_at AS labelled_at, v.target_kind AS source, v.id AS verdict_id"
)
API_NOTE_CREATE: LiteralString = (
    "CREATE (n:CaseNote {id: $id, ring_id: $ring_id, text: $text, author: $author, "
    "key_id: $key_id, build_id: $build_id, created_at: datetime()}) RETURN n {.*} AS note"
)
API_NOTES: LiteralString = (
    "UNWIND $ring_ids AS rid MATCH (n:CaseNote {ring_id: rid}) "
    "RETURN rid AS ring_id, n {.*} AS note ORDER BY n.created_at, n.id"
)
