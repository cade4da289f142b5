"""``graphrec demo``: ingest → train → serve → sample requests, narrated.

Runs on the embedded log and store by default (no servers); ``kafka``/``neo4j`` point it at
the real ones (fresh topics; the Neo4j graph is emptied first).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import grpc
from rich.console import Console

from gnn.datasets import Dataset
from gnn.train import TrainConfig
from gnn.trainer import train_once
from graphrec.changefeed import serving_feed
from graphrec.client_cli import format_path
from graphrec.pipeline import ingest, load_dataset, produce_dataset, running_sink
from graphstore import Behaviour, GraphStore, Interaction, ItemRecord, NodeKind, NodeRef, open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.server import ServerConfig
from streaming.codec import encode_item
from streaming.produce import event_record
from streaming.records import OutRecord
from streaming.urls import open_writer, parse_log_url

T = TypeVar("T")
LIVE_TIMEOUT_S = 30.0  # for a live event to show in the answers


def run_demo(
    data_dir: Path,
    events: int,
    out: Console,
    train_epochs: int = 20,
    kafka: str | None = None,
    neo4j: str | None = None,
    dataset_name: str = "synthetic",
) -> dict[str, object]:
    """Produce a dataset's events (``synthetic``: ``events`` of them; ``ml-100k``, ``ml-1m``:
    all of MovieLens'), some malformed ones mixed in → ingest → train → serve → ask,
    narrated."""
    started = time.perf_counter()
    run = uuid.uuid4().hex[:6]
    log_url = (
        f"kafka://{kafka}/demo-{run}-events?items=demo-{run}-items&changes=demo-{run}-changes"
        if kafka
        else f"log://{data_dir / 'log'}"
    )
    out.rule("1. produce")
    dataset = load_dataset(dataset_name, events, seed=0)
    malformed = max(1, len(dataset.interactions) // 100)
    report = produce_dataset(log_url, dataset, malformed=malformed)
    out.print(
        f"wrote {report.items} items and {report.events} {dataset.name} events "
        f"(+{report.malformed} malformed) to {log_url}"
    )
    with open_store(neo4j or f"sqlite://{data_dir / 'graph'}") as store:
        if neo4j:
            store.reset()
        out.rule("2. ingest")
        summary = ingest(log_url, store, group=f"demo-{run}", idle_exit_s=1.0 if kafka else 0.5)
        out.print(
            f"applied {summary.applied} records at {summary.events_per_s:,.0f} records/s; "
            f"dead-lettered {summary.dead_lettered} to events.dlq {summary.dead_letter_reasons}"
        )
        out.print_json(json.dumps(asdict(store.stats())))
        out.rule("3. train")
        trained = train_once(
            store.snapshot(), TrainConfig(epochs=train_epochs), data_dir / "models"
        )
        out.print(
            f"trained {trained['version']} (inductive GraphSAGE, validation recall@20 "
            f"{trained['validation_recall@20']}) → {trained['path']}"
        )
        _serve_and_ask(store, dataset, log_url, data_dir / "models", f"demo-{run}", out)
    result: dict[str, object] = {f"ingest_{k}": v for k, v in summary.as_dict().items()}
    result["validation_recall@20"] = trained["validation_recall@20"]
    result["seconds"] = round(time.perf_counter() - started, 1)
    out.rule(f"done in {result['seconds']} s")
    return result


def _serve_and_ask(
    store: GraphStore, dataset: Dataset, log_url: str, models: Path, group: str, out: Console
) -> None:
    """Serve the trained model with the sink and the change feed following the log; ask it."""
    out.rule("4. serve")
    serving = Serving(store, models, config=ServerConfig("127.0.0.1:0"))
    port = serving.start()
    feed = serving_feed(log_url, store, serving)
    feed.start()
    out.print(f"gRPC Recommender on 127.0.0.1:{port}, model {serving.registry.version}")
    try:
        with (
            running_sink(log_url, store, group=group),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = pb_grpc.RecommenderStub(channel)
            _ask(stub, dataset, out)
            _ask_live(stub, dataset, log_url, serving, out)
    finally:
        feed.stop()
        feed.join(timeout=10)
        serving.stop()


def _ask(stub: pb_grpc.RecommenderStub, dataset: Dataset, out: Console) -> None:
    """Recommend for the busiest user and Explain its top item; a fresh session; an item."""
    users = Counter(i.actor.key for i in dataset.interactions if i.actor.kind is NodeKind.USER)
    user = users.most_common(1)[0][0]
    response = stub.Recommend(pb.RecommendRequest(subject=pb.Subject(user_id=user), k=5))
    _show(out, f"Recommend(user {user}, who has {users[user]} events)", response)

    top = response.items[0].item_id
    why = stub.Explain(pb.ExplainRequest(subject=pb.Subject(user_id=user), item_id=top))
    out.print(f"[bold]Explain({user}, {top})[/bold]")
    for path in why.paths:
        out.print(f"   {path.contribution:+.3f}  {format_path(path)}", highlight=False)
    out.print(f"   Cypher: {why.cypher.splitlines()[0]} …  ({len(why.paths)} paths)")

    leaf = dataset.items[7].category_path
    session = pb.SessionContext(
        session_id="demo-fresh",
        events=[pb.Event(item_id=i, type=pb.CLICK) for i in _browsed(dataset)],
    )
    response = stub.Recommend(pb.RecommendRequest(subject=pb.Subject(session=session), k=5))
    _show(out, f"Recommend(fresh session that clicked 3 items in {'/'.join(leaf)})", response)

    item = dataset.items[11].item_id
    response = stub.Recommend(pb.RecommendRequest(subject=pb.Subject(item_id=item), k=5))
    _show(out, f"Recommend(similar to item {item})", response)


def _browsed(dataset: Dataset) -> list[str]:
    """Three items of one leaf category (the demo's fresh sessions click them)."""
    leaf = dataset.items[7].category_path
    return [i.item_id for i in dataset.items if i.category_path == leaf][:3]


def _ask_live(
    stub: pb_grpc.RecommenderStub, dataset: Dataset, log_url: str, serving: Serving, out: Console
) -> None:
    """A new item and a click by a brand-new session go through the log and the sink; ask
    until the session is recommended for, then until the new item is ranked in its category."""
    writer, address = open_writer(log_url), parse_log_url(log_url)
    leaf = dataset.items[7].category_path
    new = ItemRecord(
        "demo-new-item", leaf, "a brand-new product", dataset.items[7].numeric_features
    )
    sent = time.time()
    writer.send(address.items, [OutRecord(encode_item(new), new.item_id.encode())])
    actor = NodeRef(NodeKind.SESSION, "demo-live")
    click = Interaction("demo-click", actor, _browsed(dataset)[0], Behaviour.CLICK, sent)
    writer.send(address.events, [event_record(click, "proto")])
    subject = pb.Subject(session=pb.SessionContext(session_id="demo-live"))
    category = "/".join(leaf)

    def recommended() -> pb.RecommendResponse | None:
        response = stub.Recommend(pb.RecommendRequest(subject=subject, k=5, category=category))
        engine = serving.registry.current()
        live = engine is not None and new.item_id in engine.table.index
        return response if live and not response.fallback else None

    response = _poll(recommended, sent + LIVE_TIMEOUT_S)
    if response is None:
        out.print("[red]the live click did not reach the recommendations within 30 s[/red]")
        return
    _show(
        out,
        f"Recommend(session demo-live, in {category}) "
        f"{time.time() - sent:.2f} s after its first click was produced",
        response,
    )

    # The item table can hold the new item a moment before a ranking over the whole category
    # does (they are published separately), so ask until it shows up.
    def ranked() -> list[str] | None:
        request = pb.RecommendRequest(subject=subject, k=1000, category=category, include_seen=True)
        ids = [i.item_id for i in stub.Recommend(request).items]
        return ids if new.item_id in ids else None

    ids = _poll(ranked, sent + LIVE_TIMEOUT_S)
    if ids is None:
        out.print(f"[red]{new.item_id} was not ranked in its category within 30 s[/red]")
        return
    out.print(
        f"cold-start item {new.item_id} (upserted after training, no interactions): ranked "
        f"{ids.index(new.item_id) + 1} of {len(ids)} in its category for that session"
    )


def _poll(found: Callable[[], T | None], deadline: float) -> T | None:
    """``found()``'s first answer that is not None, or None once ``deadline`` (time.time) passes."""
    while True:
        answer = found()
        if answer is not None or time.time() > deadline:
            return answer
        time.sleep(0.01)


def _show(out: Console, title: str, response: pb.RecommendResponse) -> None:
    out.print(f"[bold]{title}[/bold]  (model {response.model_version})")
    if response.fallback:
        out.print(f"   fallback: {response.fallback_reason}")
    for i in response.items:
        out.print(f"   {i.item_id:<14} {'/'.join(i.category_path):<28} {i.score:8.3f}")
