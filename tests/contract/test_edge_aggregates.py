"""edge_aggregates: the one rule that folds events into {count, first_ts, last_ts} per edge."""

from __future__ import annotations

from graphstore import Behaviour, EdgeAggregate, Interaction, NodeKind, NodeRef, edge_aggregates

U1, S1 = NodeRef(NodeKind.USER, "u1"), NodeRef(NodeKind.SESSION, "u1")


def ev(actor: NodeRef, item: str, b: Behaviour, ts: float) -> Interaction:
    return Interaction(f"e{ts}", actor, item, b, ts)


def test_events_fold_per_actor_relationship_and_item() -> None:
    events = [
        ev(U1, "p1", Behaviour.VIEW, 30.0),
        ev(U1, "p1", Behaviour.VIEW, 10.0),
        ev(U1, "p1", Behaviour.VIEW, 20.0),
        ev(U1, "p1", Behaviour.CART, 15.0),
        ev(S1, "p1", Behaviour.VIEW, 5.0),  # same key, other kind: another edge
        ev(U1, "p2", Behaviour.VIEW, 40.0),
    ]
    assert edge_aggregates(events) == {
        (U1, "VIEWED", "p1"): EdgeAggregate(3, 10.0, 30.0),
        (U1, "CARTED", "p1"): EdgeAggregate(1, 15.0, 15.0),
        (S1, "VIEWED", "p1"): EdgeAggregate(1, 5.0, 5.0),
        (U1, "VIEWED", "p2"): EdgeAggregate(1, 40.0, 40.0),
    }


def test_merge_is_order_free() -> None:
    a, b = EdgeAggregate(2, 5.0, 9.0), EdgeAggregate(1, 3.0, 4.0)
    assert a.merge(b) == b.merge(a) == EdgeAggregate(3, 3.0, 9.0)
