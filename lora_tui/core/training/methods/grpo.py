"""GRPO: Group Relative Policy Optimization on LoRA, with no second model in memory.

For each prompt of a batch the model samples `group_size` answers (batched, through
the KV cache); the reward functions score them, and each answer's advantage is its
total reward against its group's: (reward - group mean) / group std (Dr. GRPO: not
divided by the std). The loss is the clipped policy-gradient surrogate on the answer
tokens, plus `kl_beta` x the KL from the reference (k3 estimator: e^(ref - logp) -
(ref - logp) - 1, per token). The reference is the same model with the LoRA update
switched off (every LoRA layer's scale at 0 for one forward pass): the base, never a
second copy of the weights.

The answers are sampled by the policy that the step then updates once, so the ratio
of new to old probabilities is 1 and clipping never binds (as in TRL and mlx-lm-lora
with one update per batch); `epsilon` is kept for the surrogate's exact form.

Loss variants: `grpo` averages each answer's tokens, then the answers; `dr_grpo`
divides the token sum by answers x completion_length (no length bias); `dapo`
averages over every answer token of the batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from lora_tui.core.data.records import Record
from lora_tui.core.data.rendering import render_tokens
from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import greedy_batch, sample_batch
from lora_tui.core.training.batching import PAD_MULTIPLE, BatchPlan, Example, make_batch, plan_epoch
from lora_tui.core.training.events import Sample
from lora_tui.core.training.forward import token_losses
from lora_tui.core.training.methods.base import Method, MicroBatch
from lora_tui.core.training.rewards import check_answers, parse_rewards, score_completions
from lora_tui.core.units import counted

STD_FLOOR = 1e-4  # added to a group's std: a group whose answers scored alike has advantages of 0


@dataclass(frozen=True)
class Prompt:
    tokens: tuple[int, ...]  # the rendered prompt, with the generation prompt
    text: str  # the last user turn, as reward functions read it
    answer: str | None
    place: str  # "train.jsonl, line 4" (a reward that fails names it)


@dataclass
class Scored:
    """One batch's sampled answers' scores, kept for the step's metrics."""

    scores: np.ndarray  # (rewards, answers), unweighted
    totals: np.ndarray  # (answers,) weighted sum
    lengths: np.ndarray  # (answers,) tokens


class GroupRelative(Method):
    name = "grpo"
    data = "prompts"
    stats_size = 2  # the KL summed over answer tokens, and the answer tokens
    metrics_name = "rewards"

    def prepare(self, train: list[Record], valid: list[Record]) -> None:
        p = self.params
        if not p.rewards:
            raise UserError("--method grpo needs at least one --reward (e.g. --reward number, --reward format:REGEX).")
        self.rewards = parse_rewards(p.rewards)
        self.weights = np.array([reward.weight for reward in self.rewards])
        for split, records in (("train", train), ("valid", valid)):
            if records:
                check_answers(self.rewards, records, self.context.files[split])
        check_reference(p)
        for name, on in (("Packing", p.pack), ("Replay", p.replay)):
            if on:
                self.notes.append(f"{name} applies to supervised training (--method sft): off for GRPO.")
        self.prompts = {split: self.tokenize(records, split) for split, records in (("train", train), ("valid", valid))}
        self.scored: list[Scored] = []
        self.last_group: tuple[Prompt, list[str], np.ndarray] | None = None  # the samples panel's

    def tokenize(self, records: list[Record], split: str) -> list[Prompt]:
        """Each prompt as generation reads it; one too long for its answers keeps its end."""
        room = max(1, self.params.max_seq_length - self.params.completion_length)
        prompts, cut = [], 0
        for record in records:
            tokens = render_tokens(self.tokenizer, list(record.messages), add_generation_prompt=True, line=record.line)
            if len(tokens) > room:
                tokens, cut = tokens[-room:], cut + 1
            text = next((m["content"] for m in reversed(record.messages) if m["role"] == "user"), "")
            place = f"{self.context.files[split].name}, {record.where}" if split in self.context.files else record.where
            prompts.append(Prompt(tuple(tokens), text, record.answer, place))
        if cut:
            self.notes.append(
                f"{split}: {counted(cut, 'prompt')} over the max sequence length less the completion length "
                f"({room} tokens) lost tokens from the start."
            )
        return prompts

    def train_records(self) -> int:
        return len(self.prompts["train"])

    def valid_records(self) -> int:
        return len(self.prompts["valid"])

    def plan(self, split: str, epoch: int) -> BatchPlan:
        p = self.params
        examples = [Example(prompt.tokens, len(prompt.tokens)) for prompt in self.prompts[split]]
        return plan_epoch(examples, p.batch_size, p.seed, epoch if split == "train" else 0, False, p.max_seq_length)

    # A step -------------------------------------------------------------------------

    def micro_batches(self, split: str, rows, whole: bool = False) -> list[MicroBatch]:
        """Sample each prompt's group of answers, score them, and make one micro-batch of each group
        (the activations of one group at a time; the update is the same as for the whole batch)."""
        p = self.params
        mine, stand_in = self.ranks.shard(rows)
        prompts = [self.prompts[split][row[0]] for row in mine]
        each = [prompt for prompt in prompts for _ in range(p.group_size)]
        self.model.eval()
        sampled = sample_batch(
            self.model, self.tokenizer, [list(x.tokens) for x in each], p.completion_length, p.temperature
        )
        self.model.train()
        texts = [answer.text for answer in sampled]
        lengths = np.array([len(answer.tokens) for answer in sampled])
        places = [x.place for x in each]
        answers = [x.answer for x in each]
        scores = np.array(
            score_completions(self.rewards, [x.text for x in each], texts, answers, lengths.tolist(), places)
        )
        totals = self.weights @ scores
        advantages = self.advantages(totals)
        if not stand_in:
            self.scored.append(Scored(scores, totals, lengths))
            self.last_group = (prompts[-1], texts[-p.group_size :], totals[-p.group_size :])
        examples = [Example(x.tokens + tuple(a.tokens), len(x.tokens)) for x, a in zip(each, sampled, strict=True)]
        groups = [range(start, start + p.group_size) for start in range(0, len(examples), p.group_size)]
        # every rank makes as many passes as the one with the most prompts (stand-ins count for nothing)
        passes = -(-len(rows) // self.ranks.size)
        groups += [groups[-1]] * (passes - len(groups))
        trained = float(sum(lengths)) / len(groups)  # dapo's mean is over the whole batch's answer tokens
        return [
            self.group_batch(
                [examples[i] for i in group], advantages[list(group)], trained, stand_in or n >= len(prompts)
            )
            for n, group in enumerate(groups)
        ]

    def group_batch(self, examples: list[Example], advantages: np.ndarray, trained: float, stand_in: bool):
        """One group's micro-batch. Only the positions from the last multiple of PAD_MULTIPLE before the
        answers get logits: the prompt's trains nothing, and few distinct widths keep compilations few."""
        import mlx.core as mx

        batch = make_batch(examples, tuple((i,) for i in range(len(examples))), mask_prompt=True, packed=False)
        if stand_in:
            batch.loss_mask[:] = 0
            batch.tokens = 0
        first_trained = min(example.prompt_length for example in examples) - 1
        width = batch.inputs.shape[1] - PAD_MULTIPLE * (first_trained // PAD_MULTIPLE)
        inputs = mx.array(batch.inputs)
        targets, loss_mask = mx.array(batch.targets[:, -width:]), mx.array(batch.loss_mask[:, -width:])
        reference = self.reference_logps(inputs, targets, loss_mask) if self.params.kl_beta > 0 else None
        arrays = (
            inputs,
            targets,
            loss_mask,
            mx.array(advantages.astype(np.float32)),
            mx.zeros(loss_mask.shape) if reference is None else reference,
            mx.array(max(trained, 1.0)),
        )
        return MicroBatch(arrays, batch.tokens)

    def advantages(self, totals: np.ndarray) -> np.ndarray:
        """Each answer's reward against its group's mean (and, but for Dr. GRPO, over the group's spread)."""
        groups = totals.reshape(-1, self.params.group_size)
        centred = groups - groups.mean(axis=1, keepdims=True)
        if self.params.grpo_loss != "dr_grpo":
            centred = centred / (groups.std(axis=1, ddof=1, keepdims=True) + STD_FLOOR)
        return centred.reshape(-1)

    def reference_logps(self, inputs, targets, loss_mask):
        """The base's log-probability of each answer token: the same model, LoRA switched off."""
        import mlx.core as mx

        with lora_switched_off(self.model):
            reference = -token_losses(self.model, inputs, targets, loss_mask, None)
            mx.eval(reference)
        return reference

    def loss(self, model, inputs, targets, loss_mask, advantages, reference, trained_tokens):
        import mlx.core as mx

        p = self.params
        logps = -token_losses(model, inputs, targets, loss_mask, None)
        ratio = mx.exp(logps - mx.stop_gradient(logps))
        advantage = advantages[:, None]
        surrogate = mx.minimum(ratio * advantage, mx.clip(ratio, 1 - p.epsilon, 1 + p.epsilon) * advantage)
        difference = reference - logps
        kl = (mx.exp(difference) - difference - 1) * loss_mask
        per_token = (p.kl_beta * kl - surrogate) * loss_mask
        answer_tokens = loss_mask.sum(axis=1)
        answers = (answer_tokens > 0).astype(mx.float32).sum()
        tokens = loss_mask.sum()
        if p.grpo_loss == "grpo":
            loss, count = (per_token.sum(axis=1) / mx.maximum(answer_tokens, 1)).sum() / mx.maximum(answers, 1), answers
        elif p.grpo_loss == "dr_grpo":
            loss, count = per_token.sum() / (mx.maximum(answers, 1) * p.completion_length), answers
        else:  # a share of the batch's mean over all answer tokens: the group micro-batches add up to it
            loss, count = per_token.sum() / trained_tokens, tokens
        return loss, count, mx.stack([kl.sum(), tokens])

    # What it reports ------------------------------------------------------------------

    def metrics(self, sums: np.ndarray) -> dict:
        """The step's rewards over every rank's answers, the KL per answer token, lengths and flat groups."""
        scored, self.scored = self.scored, []
        scores = np.concatenate([s.scores for s in scored], axis=1) if scored else np.zeros((len(self.rewards), 0))
        totals = np.concatenate([s.totals for s in scored]) if scored else np.zeros(0)
        lengths = np.concatenate([s.lengths for s in scored]) if scored else np.zeros(0)
        groups = totals.reshape(-1, self.params.group_size)
        flat = float((groups.max(axis=1) - groups.min(axis=1) < 1e-9).sum()) if groups.size else 0.0
        rows = np.vstack([scores, totals]) if scores.size else np.zeros((len(self.rewards) + 1, 0))
        local = [
            *rows.sum(axis=1),
            *(rows**2).sum(axis=1),
            float(totals.size),
            float(lengths.sum()),
            flat,
            groups.shape[0],
        ]
        summed = np.array(self.ranks.sum([float(v) for v in local]))
        width = len(self.rewards) + 1
        count = max(summed[2 * width], 1.0)
        means = summed[:width] / count
        spreads = np.sqrt(np.maximum(summed[width : 2 * width] / count - means**2, 0.0))
        return {
            "reward": float(means[-1]),
            "reward_std": float(spreads[-1]),
            "rewards": {
                reward.name: {"mean": float(m), "std": float(s)}
                for reward, m, s in zip(self.rewards, means, spreads, strict=False)
            },
            "kl": float(sums[0] / max(sums[1], 1.0)),
            "completion_tokens": float(summed[2 * width + 1] / count),
            "flat_groups": float(summed[2 * width + 2] / max(summed[2 * width + 3], 1.0)),
        }

    def after_step(self, step: int) -> None:
        """The best and worst answer of the step's last group, with their rewards (the samples panel shows them)."""
        if not self.ranks.is_writer or not self.last_group:
            return
        prompt, texts, totals = self.last_group
        best = int(np.argmax(totals))
        worst = len(totals) - 1 - int(np.argmin(totals[::-1]))  # another answer when they all scored alike
        self.context.emit(
            Sample(
                step=step,
                prompts=[prompt.text, prompt.text],
                answers=[texts[best].strip(), texts[worst].strip()],
                rewards=[float(totals[best]), float(totals[worst])],
            )
        )

    def validate(self, val_batches: int) -> tuple[float, dict]:
        """Greedy answers to held-out prompts, scored: the validation 'loss' is minus the mean total reward."""
        prompts = [self.prompts["valid"][row[0]] for rows in self.plan("valid", 0).rows[:val_batches] for row in rows]
        mine, stand_in = self.ranks.shard(prompts)
        self.model.eval()
        answers = greedy_batch(
            self.model, self.tokenizer, [list(x.tokens) for x in mine], self.params.completion_length
        )
        self.model.train()
        scores = np.array(
            score_completions(
                self.rewards,
                [x.text for x in mine],
                [a.text for a in answers],
                [x.answer for x in mine],
                [a.tokens + int(a.ended) for a in answers],
                [x.place for x in mine],
            )
        )
        weight = 0.0 if stand_in else 1.0
        local = [*(scores.sum(axis=1) * weight), float(len(mine)) * weight]
        summed = np.array(self.ranks.sum(local))
        means = summed[:-1] / max(summed[-1], 1.0)
        total = float(self.weights @ means)
        return -total, {
            "reward": total,
            "rewards": {r.name: float(m) for r, m in zip(self.rewards, means, strict=True)},
        }


def check_reference(params) -> None:
    if params.fine_tune_type == "dora" and params.kl_beta > 0:
        raise UserError(
            "GRPO's KL term reads the base with the LoRA switched off, which DoRA's learned magnitudes do not "
            "allow: use --fine-tune-type lora, or --kl-beta 0."
        )


@contextlib.contextmanager
def lora_switched_off(model):
    """Every LoRA layer's update scaled by 0 for the duration: the model computes its base."""
    layers = [module for _, module in model.named_modules() if hasattr(module, "lora_a") and hasattr(module, "scale")]
    scales = [layer.scale for layer in layers]
    for layer in layers:
        layer.scale = 0.0
    try:
        yield
    finally:
        for layer, scale in zip(layers, scales, strict=True):
            layer.scale = scale
