"""A running periodic trainer publishes a new version after M new events, and a running server
hot-reloads it with no failed request: all on the embedded log and store, events through the
real sink, the real gRPC service under a client that never stops asking."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from gnn.checkpoint import current_version
from gnn.datasets import Dataset, SyntheticConfig, generate
from gnn.train import TrainConfig
from gnn.trainer import PeriodicTrainer, Schedule
from graphrec.pipeline import produce_dataset, running_sink
from graphstore import open_store
from protos import graphrec_pb2 as pb
from protos import graphrec_pb2_grpc as pb_grpc
from serving.app import Serving
from serving.server import ServerConfig
from tests.integration.waiting import wait_until

FIRST_EVENTS = 600
EVERY_EVENTS = 2_000  # M: the trainer's schedule, and the events fed to make it train again


def _shop(seed: int, events: int) -> Dataset:
    # the same users and items each time (u*, p*), new sessions and event ids per seed
    return generate(SyntheticConfig(seed=seed, events=events, users=60, items=80))


@dataclass
class Asking:
    """A client asking Recommend back to back on its own thread: every answer's version and
    every failure's status code."""

    stub: pb_grpc.RecommenderStub
    versions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        request = pb.RecommendRequest(subject=pb.Subject(user_id="u1"), k=10)
        while not self.stop.is_set():
            try:
                response = self.stub.Recommend(request, timeout=10)
            except grpc.RpcError as exc:
                self.failures.append(f"{exc.code()}: {exc.details()}")
                continue
            self.versions.append(response.model_version)


@contextmanager
def trainer_running(trainer: PeriodicTrainer) -> Iterator[list[BaseException]]:
    """``trainer.run`` on a thread until the block ends; what it raised is in the list."""
    stopping, raised = threading.Event(), []

    def run() -> None:
        try:
            trainer.run(stopping)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, name="trainer", daemon=True)
    thread.start()
    try:
        yield raised
    finally:
        stopping.set()
        thread.join(timeout=120)
    assert not thread.is_alive(), "the trainer did not stop"


def test_a_running_trainer_publishes_after_m_events_and_the_server_reloads_it_without_a_failure(
    tmp_path: Path,
) -> None:
    log_url, store_url = f"log://{tmp_path / 'log'}", f"sqlite://{tmp_path / 'graph'}"
    models = tmp_path / "models"
    summaries: list[dict[str, object]] = []
    trainer = PeriodicTrainer(
        lambda: open_store(store_url),
        TrainConfig(epochs=6, eval_every=2, seed=0),
        models,
        Schedule(every_events=EVERY_EVENTS),
        summaries.append,
    )
    produce_dataset(log_url, _shop(1, FIRST_EVENTS))
    with open_store(store_url) as sink_store, open_store(store_url) as serving_store:
        serving = Serving(
            serving_store, models, config=ServerConfig(address="127.0.0.1:0"), reload_every_s=0.1
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{serving.start()}")
        asking = Asking(pb_grpc.RecommenderStub(channel))
        client = threading.Thread(target=asking.run, name="client", daemon=True)
        try:
            with running_sink(log_url, sink_store, group="sink"):
                applied = serving_store.stats
                wait_until("the first events", lambda: applied().interactions == FIRST_EVENTS, 60)
                with trainer_running(trainer) as raised:
                    wait_until("a first version", lambda: current_version(models) is not None, 120)
                    first = current_version(models)
                    wait_until("it served", lambda: serving.registry.version == first, 60)
                    client.start()
                    wait_until("answers from it", lambda: len(asking.versions) >= 5, 30)
                    produce_dataset(log_url, _shop(2, EVERY_EVENTS))  # M more, through the sink
                    wait_until("a new version", lambda: current_version(models) != first, 240)
                    second = current_version(models)
                    wait_until("answers from it", lambda: second in asking.versions, 60)
                    assert not raised, raised
        finally:
            asking.stop.set()
            if client.is_alive():
                client.join(timeout=30)
            channel.close()
            serving.stop()
    assert asking.failures == []
    assert len(asking.versions) > 20, "the client asked too rarely to see a reload happen"
    assert asking.versions[0] == first and asking.versions[-1] == second
    switched = asking.versions.index(second)
    assert set(asking.versions[:switched]) == {first}  # one swap, never back
    assert set(asking.versions[switched:]) == {second}
    assert [s["published"] for s in summaries] == [True, True]
    assert [s["version"] for s in summaries] == [first, second]
    assert summaries[1]["previous"] == first
