"""Tiny random models of each family with a chat template written like the real family's, for the
family matrix (tests/test_families.py) and the loss-mask tests (tests/test_masks.py).

The templates follow the real files' structure where it matters for masking: where the system
prompt goes (Gemma folds it into the first user turn; Mistral v0.3 puts it before the last user
message only, so a finished conversation drops it), what ends a turn, what follows the end of a
turn, Qwen3's thinking blocks (kept only after the last user message) and Qwen2.5's tool calls.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinymodels import CHATML_TEMPLATE, FAMILY_CONFIGS, SPECIAL_TOKENS, make_tiny_model, train_tokenizer

LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system_message + '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

QWEN25_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\n<tools>' }}{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools><|im_end|>\\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) "
    "or (message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant' }}{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for call in message.tool_calls %}{%- if call.function is defined %}{%- set call = call.function %}{%- endif %}"
    '{{- \'\\n<tool_call>\\n{"name": "\' + call.name + \'", "arguments": \' + (call.arguments | tojson) '
    "+ '}\\n</tool_call>' }}"
    "{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

QWEN3_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- set ns = namespace(last_query_index=-1) %}"
    "{%- for message in messages %}{%- if message.role == 'user' %}{%- set ns.last_query_index = loop.index0 %}"
    "{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) "
    "or (message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant' }}{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for call in message.tool_calls %}{%- if call.function is defined %}{%- set call = call.function %}{%- endif %}"
    '{{- \'\\n<tool_call>\\n{"name": "\' + call.name + \'", "arguments": \' + (call.arguments | tojson) '
    "+ '}\\n</tool_call>' }}"
    "{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

QWEN3_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- set ns = namespace(last_query_index=-1) %}"
    "{%- for message in messages %}{%- if message.role == 'user' %}{%- set ns.last_query_index = loop.index0 %}"
    "{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set content = message.content %}{%- set reasoning = '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning) %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}"
    "{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

MISTRAL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{%- endif %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- endif %}"
    "{%- endfor %}"
)

PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# Per family: the mlx-lm model type and config overrides, its special tokens (after the shared three),
# its tokenizer's bos/eos, its chat template, and the tokens that end a turn (config's eos_token_id).
MOE_OVERRIDES = {
    "head_dim": 16,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "norm_topk_prob": True,
}
FAMILIES = {
    "llama": {
        "model": FAMILY_CONFIGS["llama"],
        "specials": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
        "template": LLAMA3_TEMPLATE,
        "stops": ["<|eot_id|>", "<|endoftext|>"],
    },
    "qwen2": {
        "model": FAMILY_CONFIGS["qwen2"],
        "specials": [],
        "bos": None,
        "eos": "<|im_end|>",
        "template": QWEN25_TEMPLATE,
        "stops": ["<|im_end|>", "<|endoftext|>"],
    },
    "qwen3": {
        "model": FAMILY_CONFIGS["qwen3"],
        "specials": ["<think>", "</think>"],
        "bos": None,
        "eos": "<|im_end|>",
        "template": QWEN3_TEMPLATE,
        "stops": ["<|im_end|>", "<|endoftext|>"],
    },
    "gemma3": {
        "model": FAMILY_CONFIGS["gemma3"],
        "specials": ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"],
        "bos": "<bos>",
        "eos": "<eos>",
        "template": GEMMA3_TEMPLATE,
        "stops": ["<eos>", "<end_of_turn>"],
    },
    "mistral": {
        "model": ("mistral", {}),
        "specials": ["<s>", "</s>", "[INST]", "[/INST]"],
        "bos": "<s>",
        "eos": "</s>",
        "template": MISTRAL_TEMPLATE,
        "stops": ["</s>"],
    },
    "phi3": {
        "model": FAMILY_CONFIGS["phi3"],
        "specials": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        "bos": None,
        "eos": "<|endoftext|>",
        "template": PHI3_TEMPLATE,
        "stops": ["<|endoftext|>", "<|end|>"],
    },
    "qwen3_moe": {
        "model": ("qwen3_moe", MOE_OVERRIDES),
        "specials": ["<think>", "</think>"],
        "bos": None,
        "eos": "<|im_end|>",
        "template": QWEN3_TEMPLATE,
        "stops": ["<|im_end|>", "<|endoftext|>"],
    },
    "base": {  # a pretrained model with no chat template
        "model": FAMILY_CONFIGS["llama"],
        "specials": [],
        "bos": None,
        "eos": "<|endoftext|>",
        "template": None,
        "stops": ["<|endoftext|>"],
    },
}
CHAT_FAMILIES = [name for name, family in FAMILIES.items() if family["template"]]


def make_chat_family_model(folder: Path, name: str, seed: int = 0) -> Path:
    """A tiny random model of family `name` with its own special tokens and chat template."""
    family = FAMILIES[name]
    model_type, overrides = family["model"]
    tokenizer = train_tokenizer(specials=SPECIAL_TOKENS + family["specials"])
    vocab = tokenizer.get_vocab()
    config = {
        "bos_token": family["bos"],
        "eos_token": family["eos"],
        "pad_token": "<|endoftext|>",
        **({"chat_template": family["template"]} if family["template"] else {}),
    }
    return make_tiny_model(
        folder,
        seed=seed,
        tokenizer=tokenizer,
        tokenizer_config=config,
        model_type=model_type,
        eos_token_id=[vocab[token] for token in family["stops"]],
        **overrides,
    )


def chat_template_of(folder: Path) -> str | None:
    return json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template")


__all__ = ["CHATML_TEMPLATE", "CHAT_FAMILIES", "FAMILIES", "chat_template_of", "make_chat_family_model"]
