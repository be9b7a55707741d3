"""Commands of the API: ``serve``, ``apikey create|revoke|list``, ``query clusters``, ``schema``,
``audit find``.

Mounted in ``ringscope/cli.py``; also runnable on their own as ``python -m ringscope.api ...``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ringscope.api.app import serve as run_server
from ringscope.api.audit import find_records, is_pii
from ringscope.api.auth import Role, create_key, list_keys, revoke_key
from ringscope.api.client import RingScopeClient
from ringscope.api.context import load_mask_secret, mask_secret_path
from ringscope.api.schema import sdl
from ringscope.errors import RingScopeError
from ringscope.graph import connect
from ringscope.kinds import BY_NAME
from ringscope.settings import Settings

err = Console(stderr=True)

apikey_cli = typer.Typer(
    help="API keys: create (printed once), revoke, list.", no_args_is_help=True
)
query_cli = typer.Typer(help="Query a running RingScope API.", no_args_is_help=True)
api_cli = typer.Typer(help="The RingScope GraphQL API.", no_args_is_help=True)
api_cli.add_typer(apikey_cli, name="apikey")
api_cli.add_typer(query_cli, name="query")
audit_cli = typer.Typer(help="Search the API's audit log.", no_args_is_help=True)
api_cli.add_typer(audit_cli, name="audit")

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")


def _fail(exc: Exception) -> None:
    err.print(f"[red]{exc}[/red]")
    raise typer.Exit(2)


@api_cli.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Default: RINGSCOPE_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: RINGSCOPE_API_PORT.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes. Default: RINGSCOPE_API_WORKERS (1).")
    ] = None,
) -> None:
    """Serve /graphql, /healthz and /metrics with uvicorn until interrupted."""
    try:
        run_server(Settings(), host, port, workers)
    except RingScopeError as exc:
        _fail(exc)


@apikey_cli.command("create")
def apikey_create(
    role: Annotated[str, typer.Option(help="investigator, risk_engine or admin.")],
    name: Annotated[str | None, typer.Option(help="Who holds it (recorded as author).")] = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    if role not in {r.value for r in Role}:
        _fail(ValueError(f"Unknown role {role!r}: one of {', '.join(r.value for r in Role)}."))
    try:
        with connect(Settings()) as graph:
            key = create_key(graph, role, name)
    except RingScopeError as exc:
        _fail(exc)
        return
    err.print(f"Created key {key.key_id} ({key.role.value}, {key.name}). It is shown only once:")
    print(key.key)


@apikey_cli.command("revoke")
def apikey_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (rsk_<id>_...).")],
) -> None:
    """Revoke a key; servers refuse it within RINGSCOPE_API_KEY_CACHE_SECONDS."""
    try:
        with connect(Settings()) as graph:
            revoke_key(graph, key_id)
    except RingScopeError as exc:
        _fail(exc)
    err.print(f"Revoked key {key_id}.")


@apikey_cli.command("list")
def apikey_list() -> None:
    """List keys (ids, roles, names, dates; never secrets), one JSON object per line."""
    try:
        with connect(Settings()) as graph:
            keys = list_keys(graph)
    except RingScopeError as exc:
        _fail(exc)
        return
    for k in keys:
        print(
            json.dumps(
                {
                    "id": k.key_id,
                    "role": k.role,
                    "name": k.name,
                    "created_at": k.created_at.isoformat() if k.created_at else None,
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
            )
        )


@query_cli.command("clusters")
def query_clusters(
    min_score: Annotated[float, typer.Option("--min-score", help="Lowest cluster score.")] = 0.5,
    page_size: Annotated[int, typer.Option(help="Clusters per request.")] = 200,
    url: Annotated[str | None, typer.Option(help="Default: RINGSCOPE_API_URL.")] = None,
) -> None:
    """Every cluster of the current build at or above --min-score, as JSON lines."""
    settings = Settings()
    if settings.api_key is None:
        _fail(RingScopeError("Set RINGSCOPE_API_KEY to an API key (`ringscope apikey create`)."))
        return
    try:
        with RingScopeClient(
            url or settings.api_url, settings.api_key.get_secret_value(), timeout=30
        ) as client:
            n = 0
            for c in client.iter_clusters(min_score, page_size):
                n += 1
                print(
                    json.dumps(
                        {
                            "id": c.id,
                            "ring_id": c.ring_id,
                            "build_id": c.build_id,
                            "score": c.score,
                            "size": c.size,
                            "reasons": list(c.reasons),
                            "members": [
                                {"id": m.id, "risk_score": m.risk_score} for m in c.members
                            ],
                        }
                    )
                )
    except RingScopeError as exc:
        _fail(exc)
    err.print(f"{n} clusters.")


@api_cli.command("schema")
def schema(
    check: Annotated[bool, typer.Option(help="Exit 1 if api/schema.graphql is stale.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Print (or write, or --check) the schema's SDL; api/schema.graphql is the committed one."""
    text = sdl()
    if check:
        if SCHEMA_PATH.read_text() != text:
            err.print("api/schema.graphql is stale: `ringscope schema --out api/schema.graphql`.")
            raise typer.Exit(1)
        return
    if out is not None:
        out.write_text(text)
    else:
        sys.stdout.write(text)


AUDIT_KINDS = (*BY_NAME, "cluster")


@audit_cli.command("find")
def audit_find(
    kind: Annotated[str, typer.Option(help=f"The entity's kind: {', '.join(AUDIT_KINDS)}.")],
    entity_id: Annotated[str, typer.Option("--id", help="Its value, as stored or as asked for.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Default: RINGSCOPE_API_AUDIT_DIR.")
    ] = None,
) -> None:
    """Print the audit records (JSON lines) that name one entity.

    PII values (phone, email, id_document, bank_card) are logged only as a keyed hash; the
    value given here is hashed the same way, with the server's masking secret
    (RINGSCOPE_API_MASK_SECRET or <data dir>/api/mask_secret), so run it where the server's
    settings are. Emails are stored lower-cased; give the value as it was stored or asked for.
    """
    settings = Settings()
    if kind not in AUDIT_KINDS:
        _fail(ValueError(f"Unknown kind {kind!r}: one of {', '.join(AUDIT_KINDS)}."))
    audit_dir = directory or settings.api_audit_dir or settings.data_dir / "audit"
    if not audit_dir.is_dir():
        _fail(RingScopeError(f"No audit log at {audit_dir}; set RINGSCOPE_API_AUDIT_DIR or --dir."))
    if (
        is_pii(kind)
        and settings.api_mask_secret is None
        and not mask_secret_path(settings).exists()
    ):
        # Never make a secret here: a new one would match nothing the server wrote.
        _fail(
            RingScopeError(
                f"No masking secret ({mask_secret_path(settings)} is missing and "
                "RINGSCOPE_API_MASK_SECRET is unset), so PII values cannot be hashed as the "
                "server hashed them. Run this with the server's settings."
            )
        )
    try:
        secret = load_mask_secret(settings) if is_pii(kind) else b""
        n = 0
        for _, record in find_records(audit_dir, secret, kind, entity_id):
            n += 1
            print(json.dumps(record, ensure_ascii=False))
    except (RingScopeError, OSError) as exc:
        _fail(exc)
        return
    err.print(f"{n} records.")
