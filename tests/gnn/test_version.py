"""A model version is a complete artifact: written whole, checked against its manifest when
loaded, refused with a clear message when damaged, loaded without the graph."""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from gnn.ann import Index, build_index, index_bytes
from gnn.checkpoint import (
    current_version,
    set_current,
    snapshot_version,
    versions,
    write_version,
)
from gnn.data import GraphData
from gnn.inference import SageInference
from gnn.inputs import Content
from gnn.manifest import VersionError, version_dir, write_manifest
from gnn.models import SageConfig
from gnn.splits import make_split
from gnn.train import GnnRecommender, TrainConfig
from gnn.version import FILES, ModelVersion, load_version
from graphstore import CsrSnapshot

WATERMARKS = {"events:0": 41, "events:1": 7}


@pytest.fixture(scope="module")
def trained(small: GraphData, small_snapshot: CsrSnapshot) -> ModelVersion:
    rec = GnnRecommender(TrainConfig(epochs=2, eval_every=1, sage=SageConfig(dim=8)))
    rec.fit(small, make_split(small, "random", 0).train, seed=0)
    version = snapshot_version("v1", rec, small, small_snapshot, {"validation_recall@20": 0.1})
    return replace(version, watermarks=WATERMARKS)


@pytest.fixture
def saved(trained: ModelVersion, tmp_path: Path) -> Path:
    return write_version(tmp_path / "models", trained)


def test_a_version_round_trips_and_holds_the_item_table_serving_computes_from_the_graph(
    trained: ModelVersion, saved: Path, small: GraphData
) -> None:
    loaded = load_version(saved)
    assert (loaded.name, loaded.watermarks) == ("v1", WATERMARKS)
    assert loaded.metrics == {"validation_recall@20": 0.1}
    assert loaded.config == trained.config and loaded.reference_ts == trained.reference_ts
    assert loaded.index.items == trained.index.items and loaded.index.items
    assert np.array_equal(loaded.index.id_rows, trained.index.id_rows)
    original = trained.model.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in loaded.model.state_dict().items())
    # what serving computed from the whole graph at every load before: the version holds it
    inference = SageInference.from_dir(saved, trained.reference_ts)
    content = Content.of(small, loaded.index.id_rows >= 0)
    _, z = inference.forward(small.num_actors, small.edges, content)
    np.testing.assert_allclose(loaded.items.embeddings, z, rtol=1e-5, atol=1e-6)
    assert np.array_equal(loaded.items.content.ancestors, content.ancestors)
    np.testing.assert_allclose(loaded.items.content.features, content.features, atol=1e-6)
    assert np.array_equal(loaded.items.content.id_rows, content.id_rows)
    assert any(loaded.items.leaves) and any(loaded.items.titles)


def test_the_manifest_lists_every_file_with_its_size_and_sha256(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    on_disk = {p.name for p in saved.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk == set(FILES)
    for name, entry in manifest["files"].items():
        data = (saved / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".tmp-")]


def _truncate(d: Path) -> None:
    path = d / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size: only the checksum can tell
    path.write_bytes(bytes(data))


def _flip_byte(d: Path) -> None:
    _flip(d / "items.safetensors")


def _flip_header_byte(d: Path) -> None:
    path = d / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[9] ^= 0xFF  # inside the JSON header: the bytes no longer parse
    path.write_bytes(bytes(data))


def _old_format(d: Path) -> None:
    (d / "manifest.json").unlink()
    (d / "meta.json").write_text("{}")


DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "truncated weights": (_truncate, r"v1: model\.safetensors is \d+ bytes, the manifest says"),
    "changed byte": (_flip_byte, r"v1: items\.safetensors does not match its sha256"),
    # read while its digest was being computed: reported as changed, not as unreadable
    "changed header byte": (
        _flip_header_byte,
        r"v1: model\.safetensors does not match its sha256",
    ),
    "missing file": (lambda d: (d / "index.json").unlink(), r"v1: index\.json is missing"),
    "unlisted file": (
        lambda d: (d / "extra.bin").write_bytes(b"x"),
        r"v1: extra\.bin is not listed in manifest\.json",
    ),
    "missing manifest": (
        lambda d: (d / "manifest.json").unlink(),
        r"v1: manifest\.json is missing: not a complete version",
    ),
    "corrupt manifest": (
        lambda d: (d / "manifest.json").write_text('{"format": "graphrec-version/1", "fi'),
        r"v1: manifest\.json is corrupt",
    ),
    "older graphrec": (_old_format, r"v1: .*written by an older graphrec; retrain"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_version_is_refused_naming_the_version_and_the_file(
    saved: Path, damage: str
) -> None:
    harm, message = DAMAGE[damage]
    harm(saved)
    with pytest.raises(VersionError, match=message):
        load_version(saved)
    with pytest.raises(ValueError, match=message):  # serving's loader refuses it too
        SageInference.from_dir(saved, 0.0)


def test_a_half_written_version_is_never_a_version(
    trained: ModelVersion, saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = saved.parent
    shutil.copytree(saved, models / ".tmp-v2")  # a writer died just before its rename
    assert versions(models) == ["v1"]
    with pytest.raises(VersionError, match="not a version name"):
        load_version(models / ".tmp-v2")
    with pytest.raises(VersionError, match="not a version name"):
        set_current(models, ".tmp-v2")

    def dies(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("gnn.checkpoint.os.rename", dies)
    with pytest.raises(OSError, match="disk full"):
        write_version(models, replace(trained, name="v3"))
    assert sorted(p.name for p in models.iterdir()) == [".tmp-v2", "v1"]
    monkeypatch.undo()
    write_version(models, replace(trained, name="v2"))  # replaces the stale temporary
    assert sorted(p.name for p in models.iterdir()) == ["v1", "v2"]
    assert load_version(models / "v2").name == "v2"
    with pytest.raises(VersionError, match="already exists"):
        write_version(models, trained)


@pytest.mark.parametrize("name", ["..", "../v1", "a/b", "/etc", ".tmp-v1", "", "v1/.."])
def test_a_version_name_that_is_not_one_path_component_is_refused(saved: Path, name: str) -> None:
    models = saved.parent
    with pytest.raises(VersionError, match="not a version name"):
        version_dir(models, name)
    (models / "current").write_text(name or "\n")
    if name:
        with pytest.raises(VersionError, match="not a version name"):
            current_version(models)
    else:
        assert current_version(models) is None
    set_current(models, "v1")
    assert current_version(models) == "v1"


def test_loading_reads_no_graph(saved: Path, tmp_path: Path) -> None:
    assert list(inspect.signature(load_version).parameters) == ["directory"]
    elsewhere = tmp_path / "copied" / "v1"
    shutil.copytree(saved, elsewhere)  # the directory alone: no store, no snapshot
    assert load_version(elsewhere).items.embeddings.shape == (200, 8)


def test_a_listed_file_that_is_not_safetensors_is_refused(saved: Path) -> None:
    (saved / "items.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    (saved / "manifest.json").unlink()
    write_manifest(saved, "v1")  # the manifest is right about the bytes: they are no tensors
    with pytest.raises(VersionError, match=r"v1: items\.safetensors is not a readable"):
        load_version(saved)


def _drop_a_tensor(weights: dict[str, torch.Tensor]) -> None:
    del weights["level_weight"]


def _reshape_a_tensor(weights: dict[str, torch.Tensor]) -> None:
    weights["level_weight"] = torch.ones(weights["level_weight"].numel() + 1)


@pytest.mark.parametrize("harm", [_drop_a_tensor, _reshape_a_tensor])
def test_weights_that_do_not_fit_the_model_are_refused(
    saved: Path, harm: Callable[[dict[str, torch.Tensor]], None]
) -> None:
    weights = load_file(saved / "model.safetensors")
    harm(weights)
    save_file(weights, saved / "model.safetensors")
    (saved / "manifest.json").unlink()
    write_manifest(saved, "v1")  # the manifest is right about the bytes: the model is not
    with pytest.raises(VersionError, match=r"v1: model\.safetensors does not fit the model"):
        load_version(saved)


def test_a_loaded_model_holds_every_tensor_in_memory_and_trains(saved: Path) -> None:
    model = load_version(saved).model
    tensors = [*model.parameters(), *model.buffers()]
    assert tensors and all(t.device.type == "cpu" for t in tensors)  # none left on "meta"
    assert all(p.requires_grad for p in model.parameters())


def test_a_version_below_the_threshold_has_no_usearch_index(saved: Path) -> None:
    assert not (saved / "items.usearch").exists()
    assert load_version(saved).ann is None


def test_from_the_threshold_on_a_version_holds_the_usearch_index_of_its_embeddings(
    trained: ModelVersion, tmp_path: Path
) -> None:
    items = len(trained.index.items)
    assert write_version(tmp_path / "below", trained, index_from=items + 1)
    assert not (tmp_path / "below" / "v1" / "items.usearch").exists()
    saved = write_version(tmp_path / "models", trained, index_from=items)
    manifest = json.loads((saved / "manifest.json").read_text())
    assert "items.usearch" in manifest["files"]
    ann = load_version(saved).ann
    assert ann is not None and len(ann) == items
    np.testing.assert_array_equal(ann.get(np.arange(items)), trained.items.embeddings)
    for row in range(0, items, 17):  # searched as it was built: each row finds itself first
        query = trained.items.embeddings[row]
        best = int(np.argmax(trained.items.embeddings @ query))
        assert ann.search(query, 1).keys.tolist() == [best]


def _with_index(trained: ModelVersion, tmp_path: Path, ann: Index) -> Path:
    return write_version(tmp_path / "models", replace(trained, ann=ann))


def test_a_version_written_with_its_index_loads_the_same_index(
    trained: ModelVersion, tmp_path: Path
) -> None:
    built = build_index(trained.items.embeddings)
    loaded = load_version(_with_index(trained, tmp_path, built)).ann
    assert loaded is not None and loaded is not built
    queries = trained.items.embeddings[:50]
    assert np.array_equal(loaded.search(queries, 10).keys, built.search(queries, 10).keys)


def test_a_damaged_index_is_refused(trained: ModelVersion, tmp_path: Path) -> None:
    saved = _with_index(trained, tmp_path, build_index(trained.items.embeddings))
    _flip(saved / "items.usearch")
    with pytest.raises(VersionError, match=r"v1: items\.usearch does not match its sha256"):
        load_version(saved)


def test_an_index_of_other_rows_is_refused_even_with_a_right_checksum(
    trained: ModelVersion, tmp_path: Path
) -> None:
    saved = _with_index(trained, tmp_path, build_index(trained.items.embeddings))
    fewer = build_index(trained.items.embeddings[:-1])
    (saved / "items.usearch").write_bytes(index_bytes(fewer))
    (saved / "manifest.json").unlink()
    write_manifest(saved, "v1")  # the manifest is right about the bytes: the index is not
    with pytest.raises(VersionError, match=r"v1: items\.usearch holds 199 rows, not"):
        load_version(saved)
    with pytest.raises(VersionError, match="its index holds 199 rows of 8"):
        write_version(tmp_path / "other", replace(trained, ann=fewer))
