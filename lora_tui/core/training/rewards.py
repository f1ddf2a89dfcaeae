"""Reward functions for GRPO: built in, or a Python function of the user's.

`--reward NAME[=WEIGHT]` is repeatable; the total reward of a completion is the
weighted sum. A user reward is `FILE.py:FUNCTION`: either
`f(prompt: str, completion: str, answer: str | None) -> float`, or, to score a
whole batch at once, a function whose first parameter is named `prompts`:
`f(prompts, completions, answers) -> list[float]`. Everything a reward does wrong
(raises, returns something that is not a number, is missing) is a `RewardError`
naming the reward, the record and the line of the exception.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.errors import UserError

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
WEIGHT = re.compile(r"^(?P<spec>.+?)=(?P<weight>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")


class RewardError(UserError):
    """A reward failed on a record; the run stops and saves."""

    advice = ""


@dataclass(frozen=True)
class Reward:
    name: str  # as the user wrote it, without the weight: "number", "format:^\\d+$", "rewards.py:brief"
    weight: float
    score: Callable[[list[str], list[str], list[str | None], list[int]], list[float]]  # a batch at once
    needs_answer: bool = False


@dataclass(frozen=True)
class BuiltIn:
    help: str
    needs_answer: bool
    takes_argument: str = ""  # what follows the colon: "REGEX", "N"


BUILT_INS = {
    "exact": BuiltIn("1 when the completion, trimmed, equals the answer; else 0.", True),
    "contains": BuiltIn("1 when the answer appears in the completion (any case); else 0.", True),
    "number": BuiltIn("1 when the last number in the completion equals the answer; else 0.", True),
    "format": BuiltIn("1 when the whole completion (trimmed) matches the regular expression; else 0.", False, "REGEX"),
    "length": BuiltIn("0 up to N tokens, then minus the share it goes past: -(tokens - N) / N.", False, "N"),
}


def reward_help() -> str:
    lines = [
        f"{name + (':' + b.takes_argument if b.takes_argument else ''):<14} {b.help}" for name, b in BUILT_INS.items()
    ]
    lines.append(f"{'FILE.py:FUNC':<14} your own: f(prompt, completion, answer) -> float")
    return "\n".join(lines)


def split_rewards(text: str) -> list[str]:
    """A comma-separated list of rewards, where a regular expression may hold commas itself:
    a comma starts a new reward only when what follows names one."""
    parts: list[str] = []
    for piece in text.split(","):
        starts_reward = _names_a_reward(piece.strip())
        if parts and not starts_reward:
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return [part.strip() for part in parts if part.strip()]


def _names_a_reward(text: str) -> bool:
    head = text.split(":", 1)[0].split("=", 1)[0]
    return head in BUILT_INS or head.endswith(".py")


def parse_rewards(specs: list[str]) -> list[Reward]:
    """The rewards the specs name; a spec that names none, a bad regex or a broken file is refused."""
    return [parse_reward(spec) for spec in specs]


def check_rewards(specs: list[str]) -> None:
    """Param check: every spec names a reward that loads (the files compile and have the function)."""
    parse_rewards(specs)


def parse_reward(spec: str) -> Reward:
    spec = spec.strip()
    weight = 1.0
    if (match := WEIGHT.match(spec)) and (match["spec"] in BUILT_INS or ":" in match["spec"]):
        spec, weight = match["spec"], float(match["weight"])
    name, _, argument = spec.partition(":")
    if name.endswith(".py"):
        return Reward(spec, weight, _user_reward(Path(name).expanduser(), argument))
    if name not in BUILT_INS:
        raise UserError(
            f"--reward {spec}: no such reward (built in: {', '.join(BUILT_INS)}; or FILE.py:FUNCTION of your own)."
        )
    built_in = BUILT_INS[name]
    if built_in.takes_argument and not argument:
        raise UserError(f"--reward {name} needs {name}:{built_in.takes_argument}.")
    if not built_in.takes_argument and argument:
        raise UserError(f"--reward {name} takes no argument (got {name}:{argument}).")
    return Reward(spec, weight, _built_in(name, argument, spec), built_in.needs_answer)


def _built_in(name: str, argument: str, spec: str):
    if name == "exact":
        return _each(lambda completion, answer, tokens: float(completion.strip() == (answer or "").strip()))
    if name == "contains":
        return _each(lambda completion, answer, tokens: float((answer or "").strip().lower() in completion.lower()))
    if name == "number":
        return _each(lambda completion, answer, tokens: float(_same_number(last_number(completion), answer)))
    if name == "format":
        try:
            pattern = re.compile(argument, re.DOTALL)
        except re.error as error:
            raise UserError(f"--reward {spec}: the regular expression does not compile ({error}).") from None
        return _each(lambda completion, answer, tokens: float(pattern.fullmatch(completion.strip()) is not None))
    try:
        limit = int(argument)
    except ValueError:
        raise UserError(f"--reward {spec}: N must be a whole number of tokens (got {argument!r}).") from None
    if limit < 1:
        raise UserError(f"--reward {spec}: N must be at least 1.")
    return _each(lambda completion, answer, tokens: -max(0, tokens - limit) / limit)


def _each(function):
    def score(prompts, completions, answers, tokens):
        return [function(c, a, t) for c, a, t in zip(completions, answers, tokens, strict=True)]

    return score


def last_number(text: str) -> str | None:
    found = NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def _same_number(found: str | None, answer: str | None) -> bool:
    if found is None or answer is None:
        return False
    try:
        return math.isclose(float(found), float(answer.strip().replace(",", "")), rel_tol=1e-9, abs_tol=1e-9)
    except ValueError:
        return found == answer.strip()


def _user_reward(path: Path, function_name: str):
    if not function_name:
        raise UserError(f"--reward {path}: name the function too, as {path}:FUNCTION.")
    if not path.is_file():
        raise UserError(f"--reward {path}:{function_name}: no such file.")
    module = _load_module(path)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UserError(f"{path}: no function named {function_name!r}.")
    batched = next(iter(inspect.signature(function).parameters), "") == "prompts"
    if batched:
        return lambda prompts, completions, answers, tokens: function(prompts, completions, answers)
    return lambda prompts, completions, answers, tokens: [
        function(p, c, a) for p, c, a in zip(prompts, completions, answers, strict=True)
    ]


def _load_module(path: Path):
    name = f"lora_tui_reward_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        source = path.read_text(encoding="utf-8")
        compile(source, str(path), "exec")
    except SyntaxError as error:
        raise UserError(f"{path}, line {error.lineno}: {error.msg} (a syntax error in the reward file).") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the reward file ({error}).") from None
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's module raised while loading: say where, never crash
        raise UserError(f"{path}: loading it raised {_exception_text(error, path)}.") from None
    sys.modules[name] = module
    return module


def _exception_text(error: BaseException, path: Path | None = None) -> str:
    """`ValueError: bad value (rewards.py, line 7)`: the exception and the innermost line in the user's file."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if path is None or Path(f.filename).resolve() == path.resolve()] or frames
    where = f" ({Path(own[-1].filename).name}, line {own[-1].lineno})" if own else ""
    return f"{type(error).__name__}: {error}{where}"


def score_completions(
    rewards: list[Reward],
    prompts: list[str],
    completions: list[str],
    answers: list[str | None],
    tokens: list[int],
    places: list[str],
) -> list[list[float]]:
    """Per reward, its scores of every completion (unweighted). `places` name each completion's record."""
    table = []
    for reward in rewards:
        try:
            scores = list(reward.score(prompts, completions, answers, tokens))
        except Exception as error:  # a user's reward raised: report it with the record, stop the run
            place = _failing_place(reward, prompts, completions, answers, tokens, places)
            raise RewardError(f"The reward {reward.name} failed on {place}: {_exception_text(error)}.") from None
        if len(scores) != len(completions):
            raise RewardError(
                f"The reward {reward.name} returned {len(scores)} scores for {len(completions)} completions."
            )
        for index, value in enumerate(scores):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RewardError(
                    f"The reward {reward.name} returned {value!r} for {places[index]}; "
                    "a reward must be a finite number."
                )
        table.append([float(value) for value in scores])
    return table


def _failing_place(reward: Reward, prompts, completions, answers, tokens, places) -> str:
    """Which record a batch failed on: score them one at a time until one raises."""
    for index in range(len(completions)):
        one = slice(index, index + 1)
        try:
            reward.score(prompts[one], completions[one], answers[one], tokens[one])
        except Exception:  # the one that fails
            return places[index]
    return "a batch of records"


def check_answers(rewards: list[Reward], records, path) -> None:
    """Answer-based rewards need answers: the first prompt without one is refused, naming the reward."""
    needing = [r.name for r in rewards if r.needs_answer]
    if not needing:
        return
    missing = next((r for r in records if r.answer is None), None)
    if missing is not None:
        raise UserError(
            f"{path}, {missing.where}: no 'answer', which --reward {needing[0]} scores against; "
            "give every prompt an answer, or use rewards that need none (format:REGEX, length:N, your own)."
        )


def absolute_reward_files(specs: list[str]) -> list[str]:
    """User rewards' files as absolute paths: a queued or resumed run may start from another folder."""
    kept = []
    for spec in specs:
        name, colon, rest = spec.partition(":")
        if name.endswith(".py"):
            spec = f"{Path(name).expanduser().resolve()}{colon}{rest}"
        kept.append(spec)
    return kept
