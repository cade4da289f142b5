"""Benchmarks of graphrec, each figure beside a raw baseline measured in the same run.

Run as ``graphrec bench ingest|sample|train|serve``. This package may import every product
package; no product package imports it (the ``graphrec bench`` commands load it lazily).

* ``ingest``: sink events/s beside the store's bare ``apply`` or a raw driver loop;
* ``freshness``: produce → visible in the graph, with the sink following the log;
* ``learning``: the sampler beside a raw CSR gather, a training epoch beside a bare loop;
* ``serve``: Recommend latency beside a gRPC echo server, top-K, load shedding; on Neo4j
  (``serve_world``, ``serve_neo4j``) beside the raw driver, across degrees, from ghz;
* ``neo4j_profile``: one neighbourhood read on Neo4j taken apart (``python -m``);
* ``loadgen``: the echo server and the client process of ``serve``.
"""
