"""``graphrec recommend`` and ``graphrec explain``: clients of a running ``graphrec serve``.

They import no model code (``graphrec.serving_cli`` does), so they start without loading torch."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from graphrec.config import load_config
from protos import graphrec_pb2 as pb

out = Console()

AddressOpt = Annotated[
    str | None, typer.Option("--address", help="host:port of the service (default from config).")
]
TokenOpt = Annotated[
    str, typer.Option(envvar="GRAPHREC_TOKEN", help="Bearer token, if the server requires one.")
]


def recommend_command(
    user: Annotated[str | None, typer.Option(help="Recommend for this user id.")] = None,
    session: Annotated[str | None, typer.Option(help="... or this session id.")] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(help="Session events so far, ITEM:TYPE (TYPE view/click/cart/purchase)."),
    ] = None,
    item: Annotated[str | None, typer.Option(help="... or items similar to this one.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many items.")] = 10,
    category: Annotated[str, typer.Option(help="Only this category (e.g. face/serums).")] = "",
    exclude: Annotated[list[str] | None, typer.Option(help="Item ids to leave out.")] = None,
    address: AddressOpt = None,
    token: TokenOpt = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the response as JSON.")] = False,
) -> None:
    """Ask a running `graphrec serve` for recommendations."""
    request = pb.RecommendRequest(
        subject=_subject(user, session, event, item),
        k=k,
        category=category,
        exclude_item_ids=exclude or [],
    )
    response = _call(address, token, lambda stub, md: stub.Recommend(request, metadata=md))
    if as_json:
        from google.protobuf.json_format import MessageToJson

        print(MessageToJson(response))
        return
    table = Table("item", "score", "category", "title", title=f"model {response.model_version}")
    for i in response.items:
        table.add_row(i.item_id, f"{i.score:.3f}", "/".join(i.category_path), i.title)
    out.print(table)
    if response.fallback:
        out.print(f"[yellow]fallback:[/yellow] {response.fallback_reason}")


def explain_command(
    item: Annotated[str, typer.Option(help="The recommended item to explain.")],
    user: Annotated[str | None, typer.Option(help="For this user id.")] = None,
    session: Annotated[str | None, typer.Option(help="... or this session id.")] = None,
    event: Annotated[list[str] | None, typer.Option(help="Session events, ITEM:TYPE.")] = None,
    max_paths: Annotated[int, typer.Option(min=1, max=50)] = 5,
    address: AddressOpt = None,
    token: TokenOpt = "",
) -> None:
    """Why was ITEM recommended? Prints the graph paths, their Cypher and a Browser link."""
    request = pb.ExplainRequest(
        subject=_subject(user, session, event, None), item_id=item, max_paths=max_paths
    )
    response = _call(address, token, lambda stub, md: stub.Explain(request, metadata=md))
    out.print(f"model {response.model_version}: {len(response.paths)} paths")
    for p in response.paths:
        out.print(f"  {p.contribution:+.3f}  {format_path(p)}", highlight=False)
    out.print("\nCypher:", highlight=False)
    print(response.cypher)
    out.print(f"params: {response.cypher_params_json}", highlight=False)
    out.print(f"Neo4j Browser: {response.browser_url}", highlight=False, soft_wrap=True)


def format_path(path: pb.ExplanationPath) -> str:
    """(User u1) -CLICKED- (Item i9) ... as one line."""
    text = ""
    for i, node in enumerate(path.nodes):
        text += f"({node.label} {node.id})"
        if i < len(path.relationships):
            text += f" -{path.relationships[i]}- "
    return text


def _subject(
    user: str | None, session: str | None, events: list[str] | None, item: str | None
) -> pb.Subject:
    chosen = [x for x in (user, session, item) if x]
    if len(chosen) != 1:
        raise typer.BadParameter("name exactly one of --user, --session or --item")
    if user:
        return pb.Subject(user_id=user)
    if item:
        return pb.Subject(item_id=item)
    parsed = []
    for e in events or []:
        item_id, _, kind = e.rpartition(":")
        if not item_id or kind.upper() not in ("VIEW", "CLICK", "CART", "PURCHASE"):
            raise typer.BadParameter(f"--event takes ITEM:TYPE like p12:click, got {e!r}")
        parsed.append(pb.Event(item_id=item_id, type=pb.EventType.Value(kind.upper())))
    return pb.Subject(session=pb.SessionContext(session_id=session or "", events=parsed))


def _call(address: str | None, token: str, call):  # type: ignore[no-untyped-def]
    import grpc  # here, after graphrec.cli has set GRPC_VERBOSITY

    from protos import graphrec_pb2_grpc as pb_grpc

    target = address or load_config().grpc_address
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(target) as channel:
        return call(pb_grpc.RecommenderStub(channel), metadata)
