"""Documents to training data: .txt, .md and a real PDF made here."""

import json

import pytest
from pdfmaker import make_pdf

from lora_tui.cli import main
from lora_tui.core.data.documents import Chunker, WordCounter, documents_to_jsonl, read_document
from lora_tui.core.data.pii import Redactor
from lora_tui.core.errors import UserError

ARTICLE = """# LoRA

Low-rank adaptation trains two small matrices per layer. The base model stays frozen.

It was introduced in 2021. It made fine-tuning affordable on one GPU. Many tools now support it.

""" + " ".join(f"Sentence number {i} talks about adapters and ranks." for i in range(40))


def _records(path):
    return [json.loads(line)["text"] for line in path.read_text().splitlines()]


def test_paragraph_chunks_respect_sentences_and_size(tmp_path):
    doc = tmp_path / "article.md"
    doc.write_text(ARTICLE)
    documents_to_jsonl([doc], tmp_path / "out.jsonl", "paragraphs", chunk_tokens=40)
    chunks = _records(tmp_path / "out.jsonl")
    counter = WordCounter()
    assert all(len(counter.encode(c)) <= 40 for c in chunks)
    assert chunks[0].startswith("# LoRA")
    long_parts = [c for c in chunks if "Sentence number" in c]
    assert len(long_parts) > 1 and all(c.endswith(".") for c in long_parts)  # cut at sentence ends
    assert " ".join(" ".join(c.split()) for c in chunks).count("Sentence number") == 40


def test_fixed_chunks_overlap(tmp_path):
    chunker = Chunker(WordCounter(), chunk_tokens=20, overlap=5)
    text = " ".join(f"w{i}" for i in range(50))
    chunks = list(chunker.fixed(text))
    assert [len(c.split()) for c in chunks] == [20, 20, 20]
    assert chunks[0].split()[-5:] == chunks[1].split()[:5]
    assert chunks[-1].split()[-1] == "w49"


def test_real_pdf_pages(tmp_path):
    pdf = make_pdf(
        tmp_path / "manual.pdf",
        [["Page one: installing the tool.", "Run make run."], ["Page two: training an adapter.", "Choose rank 8."]],
    )
    assert len(read_document(pdf).pages) == 2
    documents_to_jsonl([pdf], tmp_path / "pages.jsonl", "pages", chunk_tokens=100)
    pages = _records(tmp_path / "pages.jsonl")
    assert len(pages) == 2 and "installing the tool" in pages[0] and "rank 8" in pages[1]


def test_folder_of_documents_with_redaction(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Contact support at help@example.com for access.")
    make_pdf(folder / "b.pdf", [["Server address 10.1.2.3 is internal."]])
    (folder / "ignored.csv").write_text("x,y")
    summary = documents_to_jsonl([folder], tmp_path / "out.jsonl", redactor=Redactor(ner=None))
    text = " ".join(_records(tmp_path / "out.jsonl"))
    assert summary["documents"] == 2
    assert "[EMAIL]" in text and "[IP_ADDRESS]" in text and "help@example.com" not in text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: (p / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf"), "cannot read this PDF"),
        (lambda p: make_pdf(p / "blank.pdf", [[]]), "no extractable text"),
        (lambda p: (p / "latin.txt").write_bytes(b"caf\xe9"), "not UTF-8 text"),
        (lambda p: (p / "data.csv").write_text("a,b"), "not a .txt, .md or .pdf document"),
    ],
)
def test_bad_documents_are_one_sentence(tmp_path, make, message):
    make(tmp_path)
    target = next(p for p in tmp_path.iterdir())
    with pytest.raises(UserError, match=message):
        documents_to_jsonl([target], tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_from_docs_with_model_tokens(tmp_path, tiny_model_dir, capsys):
    doc = tmp_path / "a.md"
    doc.write_text(ARTICLE)
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "data",
                "from-docs",
                str(doc),
                "--out",
                str(out),
                "--chunking",
                "fixed",
                "--chunk-tokens",
                "64",
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 0
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    sizes = [len(tokenizer.encode(t, add_special_tokens=False)) for t in _records(out)]
    assert max(sizes) <= 66 and len(sizes) > 2  # decode/encode round trips may merge a token or two
    assert main(["data", "from-docs", str(doc), "--out", str(out)]) == 1  # never overwrites
