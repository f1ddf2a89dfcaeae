"""Fuzzed readers: random bytes, truncations, flipped bytes, wrong types and huge values, fed to every
reader of what a user or another program wrote. None may raise anything but lora-tui's UserError
(the GGUF header reader: its GGUFError). The number of cases tried is in pytest's summary."""

from __future__ import annotations

import contextlib
import json
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tinymodels import make_tiny_model, write_gguf

from lora_tui.core.adapters.registry import describe_folder, find_adapter, get_adapter, list_adapters
from lora_tui.core.data.check import check_dataset
from lora_tui.core.errors import UserError
from lora_tui.core.locations import Locations
from lora_tui.core.models.gguf import GGUFError, peek_metadata, read_gguf
from lora_tui.core.models.gguf_import import read_importable
from lora_tui.core.training.events import read_events
from lora_tui.settings import Settings

CASES: Counter = Counter()  # reader -> cases tried; conftest reports it
fuzzed = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure in CI can be repeated here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def mutated(original: bytes, header: int | None = None) -> st.SearchStrategy[bytes]:
    """Random bytes, `original` cut anywhere, or with a few bytes changed (within its first `header` bytes)."""
    span = min(len(original), header or len(original))
    flips = st.lists(st.tuples(st.integers(0, span - 1), st.integers(0, 255)), min_size=1, max_size=6)
    return st.one_of(
        st.binary(max_size=600),
        st.integers(0, len(original)).map(lambda end: original[:end]),
        flips.map(lambda changes: _changed(original, changes)),
    )


def _changed(original: bytes, changes) -> bytes:
    data = bytearray(original)
    for at, value in changes:
        data[at] = value
    return bytes(data)


# GGUF header --------------------------------------------------------------------------------

_GGUF: dict = {}


def _tiny_gguf(tmp_path_factory) -> bytes:
    if not _GGUF:
        folder = tmp_path_factory.mktemp("fuzz-gguf")
        model = make_tiny_model(folder / "model")
        data = write_gguf(model, folder / "tiny.gguf", "Q8_0").read_bytes()
        _GGUF["bytes"], _GGUF["header"] = data, min(t.offset for t in read_gguf(folder / "tiny.gguf").tensors)
    return _GGUF["bytes"]


@fuzzed
@given(data=st.data())
def test_the_gguf_header_reader_refuses_in_one_sentence(tmp_path_factory, tmp_path, data):
    content = data.draw(mutated(_tiny_gguf(tmp_path_factory), header=_GGUF["header"]))
    path = tmp_path / "fuzzed.gguf"
    path.write_bytes(content)
    CASES["GGUF header"] += 1
    with contextlib.suppress(GGUFError):
        read_gguf(path)
    with contextlib.suppress(GGUFError):
        peek_metadata(path, {"general.architecture", "general.name"})
    with contextlib.suppress(UserError):
        read_importable(path)


# Datasets -------------------------------------------------------------------------------------

_CHAT = (
    b'{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \\u00e9"},'
    b' {"role": "assistant", "content": "Hello."}]}\n'
    b'{"prompt": "2+2?", "completion": "4"}\n{"text": "plain"}\n'
    b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
)


@fuzzed
@given(content=mutated(_CHAT), suffix=st.sampled_from([".jsonl", ".txt", ".json"]))
def test_the_dataset_reader_refuses_in_one_sentence(tmp_path, content, suffix):
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(content)
    CASES["datasets"] += 1
    with contextlib.suppress(UserError):
        check_dataset(path)


@fuzzed
@given(records=st.lists(JSON, min_size=1, max_size=5))
def test_records_of_any_shape_are_reported_not_raised(tmp_path, records):
    path = tmp_path / "shapes.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    CASES["datasets (JSON shapes)"] += 1
    with contextlib.suppress(UserError):
        check_dataset(path)


def _table_bytes() -> dict[str, bytes]:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": f"What is {i}?", "answer": f"It is {i}."} for i in range(4)]
    parquet = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return {
        ".parquet": parquet.getvalue(),
        ".csv": b"question,answer\n" + b"".join(f'"{r["question"]}",{r["answer"]}\n'.encode() for r in rows),
        ".tsv": b"question\tanswer\n" + b"".join(f"{r['question']}\t{r['answer']}\n".encode() for r in rows),
        ".json": json.dumps(rows, indent=1).encode(),
    }


_TABLES = _table_bytes()


@fuzzed
@given(data=st.data(), suffix=st.sampled_from(sorted(_TABLES)), mapped=st.booleans())
def test_the_table_readers_refuse_in_one_sentence(tmp_path, data, suffix, mapped):
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(data.draw(mutated(_TABLES[suffix])))
    CASES["tables"] += 1
    with contextlib.suppress(UserError):
        check_dataset(path, columns={"prompt": "question", "completion": "answer"} if mapped else None)


@fuzzed
@given(rows=st.lists(st.dictionaries(st.sampled_from(["question", "answer", "text"]), JSON, max_size=3), max_size=5))
def test_json_arrays_of_any_shape_are_reported_not_raised(tmp_path, rows):
    path = tmp_path / "shapes.json"
    path.write_text(json.dumps(rows))
    CASES["tables (JSON shapes)"] += 1
    with contextlib.suppress(UserError):
        check_dataset(path, columns={"prompt": "question", "completion": "answer"})


# Adapters ------------------------------------------------------------------------------------

_CONFIG = json.dumps(
    {"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": {"rank": 8, "scale": 2.0, "dropout": 0.0}}
).encode()
_METADATA = json.dumps({"base_model": "tiny", "parameters": {"rank": 8, "alpha": 16}, "steps": 4}).encode()


def _adapter(root, config: bytes, metadata: bytes):
    folder = root / "adapters" / "fuzzed"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapters.safetensors").write_bytes(b"")
    (folder / "adapter_config.json").write_bytes(config)
    (folder / "lora_tui.json").write_bytes(metadata)
    return folder


def _every_adapter_reader(folder) -> None:
    listed = list_adapters(folder.parent)  # never raises: a broken adapter is listed as broken
    assert [a.name for a in listed] == ["fuzzed"]
    assert describe_folder(folder) is not None
    find_adapter(folder.parent, "fuzzed")
    with contextlib.suppress(UserError):
        get_adapter(folder.parent, "fuzzed")


@fuzzed
@given(config=mutated(_CONFIG), metadata=mutated(_METADATA))
def test_damaged_adapter_files_are_listed_as_broken(tmp_path, config, metadata):
    CASES["adapter files"] += 1
    _every_adapter_reader(_adapter(tmp_path, config, metadata))


@fuzzed
@given(config=JSON, metadata=JSON)
def test_adapter_files_of_any_shape_are_listed_as_broken(tmp_path, config, metadata):
    CASES["adapter files (JSON shapes)"] += 1
    _every_adapter_reader(_adapter(tmp_path, json.dumps(config).encode(), json.dumps(metadata).encode()))


# Settings and events ----------------------------------------------------------------------------


@fuzzed
@given(content=mutated(b'theme = "lora-dark"\nextra_model_dirs = ["/models"]\n'))
def test_the_settings_reader_refuses_in_one_sentence(tmp_path, content):
    locations = Locations(tmp_path / "data", tmp_path / "config", tmp_path / "cache")
    locations.settings_file.parent.mkdir(parents=True, exist_ok=True)
    locations.settings_file.write_bytes(content)
    CASES["settings"] += 1
    with contextlib.suppress(UserError):
        Settings.load(locations)


_EVENTS = (
    b'{"type": "started", "step": 0, "total_steps": 8}\n'
    b'{"type": "step", "step": 1, "epoch": 0.1, "train_loss": 2.5, "learning_rate": 0.001}\n'
    b'{"type": "validation", "step": 1, "val_loss": 2.4}\n'
)


@fuzzed
@given(content=mutated(_EVENTS), extra=st.lists(JSON, max_size=3))
def test_the_events_reader_never_raises(tmp_path, content, extra):
    path = tmp_path / "events.jsonl"
    path.write_bytes(content + b"".join(json.dumps(value).encode() + b"\n" for value in extra))
    CASES["events"] += 1
    read_events(path)
