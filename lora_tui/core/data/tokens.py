"""Token budgets with the model's real tokenizer, counted fast with tiktoken.

A tiktoken Encoding is built from the model's byte-level BPE: ranks are the
256 byte tokens, then one per merge in merge order; the pre-tokenizer regex is
the model's own. Before it is trusted, it must give the same token counts as
the model's tokenizer on a probe of varied text (code, emoji, CJK, runs of
whitespace, digits, special tokens); otherwise, and for tokenizers that are not
byte-level BPE, counting falls back to the model's tokenizer itself.

Records are counted as training will see them: conversations through the
model's chat template, plain text with BOS (if the model adds one) and EOS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lora_tui.core.data.masks import MaskedRecord, mask_record
from lora_tui.core.data.records import Record
from lora_tui.core.data.rendering import has_chat_template, render_text
from lora_tui.core.errors import UserError
from lora_tui.core.units import human_count

PAIR_PARTS = ("prompt", "chosen", "rejected")
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# GPT-2's pattern after splitting digits one by one (SmolLM, StarCoder): a digit
# stands alone, and whitespace before a digit ends its piece.
SINGLE_DIGIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?=\p{N})|\s+(?!\S)|\s+"""

PROBE_TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "def train(model, steps=1000):\n    for step in range(steps):\n\t\treturn loss  # done\n",
    "Prices: $1,234.56 or 3.14159e-10; call 555-0100 at 10:30, year 2024 (x2).",
    "日本語のテキスト、中文文本\uff0c한국어 텍스트.",  # a full-width comma
    "Emoji 🙂🚀👩‍💻 and accents: café, naïve, Ångström, Straße.",
    "   leading spaces,   runs   of    spaces,\n\n\nblank lines\r\nand CRLF   \n  ",
    "  123 4567  89\t0 a1b2c3 ' s 'll don't I'M",
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|><s></s>",
    "https://example.com/path?q=1&r=2 user@example.org #hashtag @mention",
    "Ünïcödé ̈combining marks and zero\u200bwidth and tabs\tand\u00a0nbsp.",
]


@dataclass(frozen=True)
class TokenStats:
    tokenizer: str
    exact: bool
    counts: np.ndarray  # per record; a preference pair's is its prompt with the longer answer
    max_seq_length: int
    pair_parts: np.ndarray | None = None  # preference pairs: (prompt, chosen, rejected) tokens per pair

    def to_json(self) -> dict:
        counts = self.counts
        if counts.size == 0:
            return {
                "tokenizer": self.tokenizer,
                "exact": self.exact,
                "min": 0,
                "median": 0,
                "p75": 0,
                "p95": 0,
                "max": 0,
                "mean": 0.0,
                "total": 0,
                "max_seq_length": self.max_seq_length,
                "over_limit": 0,
            }
        return {
            **self._pair_json(),
            "tokenizer": self.tokenizer,
            "exact": self.exact,
            "min": int(counts.min()),
            "median": float(np.median(counts)),
            "p75": float(np.percentile(counts, 75)),
            "p95": float(np.percentile(counts, 95)),
            "max": int(counts.max()),
            "mean": round(float(counts.mean()), 2),
            "total": int(counts.sum()),
            "max_seq_length": self.max_seq_length,
            "over_limit": int((counts > self.max_seq_length).sum()),
        }

    def _pair_json(self) -> dict:
        if self.pair_parts is None or not len(self.pair_parts):
            return {}
        return {
            part: {"median": float(np.median(column)), "max": int(column.max()), "total": int(column.sum())}
            for part, column in zip(PAIR_PARTS, self.pair_parts.T, strict=True)
        }

    def describe(self) -> list[str]:
        """The budget and a text histogram, as `data check` prints them."""
        t = self.to_json()
        lines = [
            f"tokens ({t['tokenizer']}): total {human_count(t['total'])}, min {t['min']}, median {t['median']:.0f}, "
            f"p75 {t['p75']:.0f}, p95 {t['p95']:.0f}, max {t['max']}, mean {t['mean']:.1f}",
            f"  {t['over_limit']} records over the max sequence length of {t['max_seq_length']}",
        ]
        pairs = self._pair_json()
        if pairs:
            lines.append(
                "  pairs: "
                + "; ".join(
                    f"{part} median {pairs[part]['median']:.0f}, max {pairs[part]['max']}" for part in PAIR_PARTS
                )
                + " (a pair's length is its prompt with the longer answer)"
            )
        rows = self.histogram()
        peak = max((count for _, _, count in rows), default=0) or 1
        lines += [f"  {low:>7}-{high:<7} {'#' * round(30 * count / peak):<30} {count}" for low, high, count in rows]
        return lines

    def histogram(self, bins: int = 10) -> list[tuple[int, int, int]]:
        """(low, high, count) rows."""
        if self.counts.size == 0:
            return []
        counts, edges = np.histogram(self.counts, bins=bins)
        return [(int(edges[i]), int(edges[i + 1]), int(counts[i])) for i in range(len(counts))]


class TokenCounter:
    """Counts a record's tokens the way training will tokenize it."""

    def __init__(self, hf_tokenizer, encoding=None, stops: set[int] = frozenset()) -> None:
        self.hf = hf_tokenizer
        self.encoding = encoding
        self.stops = set(stops)  # the tokens that end a turn
        self.name = "tiktoken" if encoding is not None else "model tokenizer"
        self.bos_added = len(hf_tokenizer("", add_special_tokens=True)["input_ids"])
        self.eos_id = hf_tokenizer.eos_token_id

    def count_text(self, text: str) -> int:
        """Tokens of `text` with special tokens recognised, nothing added."""
        if self.encoding is not None:
            return len(self.encoding.encode(text, allowed_special="all"))
        return len(self.hf.encode(text, add_special_tokens=False))

    def render(self, record: Record) -> str:
        if record.text is not None:
            return record.text
        return render_text(self.hf, list(record.messages), line=record.line, tools=record.tools)

    def mask(self, record: Record) -> MaskedRecord:
        """The record's tokens as training reads them, trained and masked (data/masks.py)."""
        return mask_record(self.hf, record, last_turn_only=record.is_preference, stops=self.stops)

    def count(self, record: Record) -> int:
        if record.text is not None:
            return self.plain_count(record.text)
        if record.is_preference:
            return pair_length(self.count_pair(record))
        if record.is_prompt:  # the prompt as generation reads it; the answers are the model's own
            return self.conversation_count(list(record.messages), add_generation_prompt=True, line=record.line)
        return self.conversation_count(list(record.messages), line=record.line, tools=record.tools)

    def plain_count(self, text: str) -> int:
        """Tokens of text as training reads it: BOS (if the tokenizer adds one), the text, EOS."""
        return self.bos_added + self.count_text(text) + (1 if self.eos_id is not None else 0)

    def conversation_count(self, messages: list[dict], add_generation_prompt: bool = False, line=None, tools=()) -> int:
        text = render_text(self.hf, messages, add_generation_prompt, line, tools)
        if has_chat_template(self.hf):
            return self.count_text(text)
        return self.plain_count(text) - (1 if add_generation_prompt and self.eos_id is not None else 0)

    def count_pair(self, record: Record) -> tuple[int, int, int]:
        """A preference pair's prompt tokens (with the generation prompt), and each answer's tokens after it."""
        prompt = self.conversation_count(list(record.prompt_messages), add_generation_prompt=True, line=record.line)
        rejected = [*record.prompt_messages, {"role": "assistant", "content": record.rejected}]
        chosen_total = self.conversation_count(list(record.messages), line=record.line)
        rejected_total = self.conversation_count(rejected, line=record.line)
        return prompt, chosen_total - prompt, rejected_total - prompt


def pair_length(parts: tuple[int, int, int]) -> int:
    """A pair's (prompt, chosen, rejected) tokens -> its longest sequence: the prompt and the longer answer."""
    prompt, chosen, rejected = parts
    return prompt + max(chosen, rejected)


def load_token_counter(model_path: Path) -> TokenCounter:
    """The counter for a model folder's tokenizer; a missing or broken tokenizer is a UserError."""
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(str(model_path))
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise UserError(f"{model_path}: cannot load the model's tokenizer ({first}).") from None
    encoding = tiktoken_encoding(Path(model_path) / "tokenizer.json", hf)
    return TokenCounter(hf, encoding, turn_stops(Path(model_path), hf))


def turn_stops(model_path: Path, hf_tokenizer) -> set[int]:
    """The tokens that end a turn: EOS, and the eos_token_id lists of config.json and generation_config.json."""
    stops = {hf_tokenizer.eos_token_id} - {None}
    for name in ("config.json", "generation_config.json"):
        try:
            value = json.loads((model_path / name).read_text()).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            continue
        stops |= {value} if isinstance(value, int) else {v for v in value or () if isinstance(v, int)}
    return stops


def _bytes_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes, reversed."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=False)}


def _pattern(pre_tokenizer: dict | None) -> str | None:
    """The model's pre-tokenizer as one regex, for the shapes that have one."""
    if pre_tokenizer is None:
        return None
    steps = pre_tokenizer["pretokenizers"] if pre_tokenizer["type"] == "Sequence" else [pre_tokenizer]
    kinds = [step["type"] for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return GPT2_PATTERN
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        return steps[0]["pattern"].get("Regex")
    digits_first = kinds and kinds[0] == "Digits" and steps[0].get("individual_digits")
    if digits_first and (
        (kinds[1:] == ["ByteLevel"] and steps[1].get("use_regex", True))
        or (kinds[1:] == ["Split", "ByteLevel"] and steps[1]["pattern"].get("Regex") == GPT2_PATTERN)
    ):
        return SINGLE_DIGIT_PATTERN
    return None


def tiktoken_encoding(tokenizer_json: Path, hf_tokenizer):
    """A tiktoken Encoding equal in counts to `hf_tokenizer`, or None."""
    import tiktoken

    if not tokenizer_json.is_file():
        return None
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model = spec.get("model", {})
    pattern = _pattern(spec.get("pre_tokenizer"))
    if model.get("type") != "BPE" or pattern is None or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        return None
    decoder = _bytes_decoder()
    ranks: dict[bytes, int] = {bytes([b]): b for b in range(256)}
    try:
        for merge in model.get("merges", []):
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            merged = bytes(decoder[ch] for ch in left + right)
            ranks.setdefault(merged, len(ranks))
    except KeyError:
        return None
    specials = {token["content"]: len(ranks) + i for i, token in enumerate(spec.get("added_tokens", []))}
    try:
        encoding = tiktoken.Encoding(name="lora-tui", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    except ValueError:
        return None
    for text in PROBE_TEXTS:
        if len(encoding.encode(text, allowed_special="all")) != len(
            hf_tokenizer.encode(text, add_special_tokens=False)
        ):
            return None
    return encoding


def token_stats(
    counter: TokenCounter, counts: list[int], max_seq_length: int, pair_parts: list[tuple[int, int, int]] = ()
) -> TokenStats:
    # Exact either way: tiktoken only after it matched the model's tokenizer on the probe.
    parts = np.asarray(pair_parts, dtype=np.int64).reshape(-1, 3) if pair_parts else None
    return TokenStats(counter.name, True, np.asarray(counts, dtype=np.int64), max_seq_length, parts)
