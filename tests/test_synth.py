"""`data synth`: pairs parsed, checked against their chunk, deduplicated, traced; the pipeline on real models."""

import json
import shutil
import threading
from pathlib import Path

import pytest

from lora_tui.cli import main
from lora_tui.core.data.check import check_dataset
from lora_tui.core.data.documents import WordCounter
from lora_tui.core.data.synth import (
    SUPPORT_THRESHOLD,
    Chunk,
    Synthesizer,
    SynthReport,
    document_chunks,
    parse_pairs,
    sources_path,
    support,
)
from lora_tui.core.inference.generate import Generator

DOCS = Path(__file__).parent / "data" / "docs-synth"
CHUNK = Chunk(
    Path("lighthouse.md"), 1, 0, "The Harbour Lighthouse was built in 1872 on the northern cliff of Marrow Bay."
)


def test_pairs_are_parsed_from_the_forms_models_write():
    text = (
        "Here are the questions.\n1. Q: When was it built?\nA: It was built in 1872.\n\n"
        "**Question:** Where does it stand?\n**Answer:** On the northern cliff\nof Marrow Bay.\nQ: Unanswered?"
    )
    assert parse_pairs(text) == [
        ("When was it built?", "It was built in 1872."),
        ("Where does it stand?", "On the northern cliff of Marrow Bay."),
    ]


def test_an_answer_is_supported_when_its_content_words_are_in_the_chunk():
    assert support("It was built in 1872 on the northern cliff.", CHUNK.text) == 1.0
    assert support("It was painted red by the navy in 1990.", CHUNK.text) < SUPPORT_THRESHOLD


def test_unsupported_duplicate_and_lint_failing_pairs_are_dropped(tiny_model_dir):
    synthesizer = Synthesizer(Generator(tiny_model_dir), pairs_per_chunk=5)
    report = SynthReport()
    pairs = [
        ("When was it built?", "It was built in 1872."),
        ("WHEN was it built", "In 1872, on the cliff."),  # the same question
        ("Who painted it?", "The navy painted it red in 1990."),  # not in the passage
        ("Where is it?", "As an AI language model, I cannot say."),  # boilerplate
        ("Where is it?", "Cliff"),  # too short
    ]
    synthesizer._keep(CHUNK, pairs, report, set())
    assert [p.question for p in report.kept] == ["When was it built?"]
    assert report.dropped == {"unsupported": 1, "duplicate": 1, "lint": 2}


def test_chunks_know_their_document_and_offset():
    chunks = document_chunks([DOCS], "paragraphs", 40, WordCounter())
    assert len(chunks) >= 2 and {c.document.name for c in chunks} == {"lighthouse.md"}
    text = (DOCS / "lighthouse.md").read_text()
    assert all(c.offset is not None and text[c.offset : c.offset + 20] == c.text[:20] for c in chunks)


def test_a_run_on_a_tiny_model_stops_between_batches_and_writes_whole_files(tiny_model_dir, tmp_path):
    chunks = document_chunks([DOCS], "paragraphs", 40, WordCounter())
    stop = threading.Event()
    seen = []

    def progress(report):
        seen.append(report.chunks_done)
        stop.set()

    report = Synthesizer(Generator(tiny_model_dir), 2, batch_size=1).run(chunks, stop, progress)
    assert (report.cancelled, report.chunks_done, seen) == (True, 1, [1])


def test_a_model_without_a_chat_template_is_refused_before_anything_is_written(tiny_model_dir, tmp_path, capsys):
    base = tmp_path / "base-model"
    shutil.copytree(tiny_model_dir, base)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template")
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    out = tmp_path / "pairs.jsonl"
    assert main(["data", "synth", str(DOCS), "--model", str(base), "--out", str(out)]) == 1
    assert "has no chat template: data synth" in capsys.readouterr().err
    assert not out.exists() and not sources_path(out).exists()
    out.write_text("")
    assert main(["data", "synth", str(DOCS), "--model", str(tiny_model_dir), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_text() == ""


@pytest.mark.e2e
def test_the_demo_model_writes_traceable_pairs_that_train(demo_model_dir, tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    args = ["data", "synth", str(DOCS), "--model", str(demo_model_dir), "--out", str(out), "--chunk-tokens", "60"]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs_kept"] >= 1 and summary["chunks_done"] == summary["chunks"] >= 2
    assert summary["seconds_per_chunk"] > 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    sources = [json.loads(line) for line in sources_path(out).read_text().splitlines()]
    assert len(records) == len(sources) == summary["pairs_kept"]
    document = (DOCS / "lighthouse.md").read_text()
    for record, source in zip(records, sources, strict=True):
        answer = record["messages"][1]["content"]
        assert source["support"] >= SUPPORT_THRESHOLD and source["document"].endswith("lighthouse.md")
        assert support(answer, document[source["offset"] :]) >= SUPPORT_THRESHOLD
    assert check_dataset(out).ok
