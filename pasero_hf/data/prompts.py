"""Prompts of causal language models: translation prompt templates, chat templates, conversations and loss masks.

Training (`pasero_hf.data.causal_lm`) and decoding (`TextGenerator`) encode prompts with the same `PromptFormat`, so
a model fine-tuned on `"{src_lang}: {source}\\n{tgt_lang}:"` prompts is decoded with `-s fr -t en` exactly as it
was trained: the prompt is tokenized alone (the tokenizer's special tokens, e.g. BOS, included), the target follows
as its own tokens, then EOS.

Conversations are lists of `{"role": "system"|"user"|"assistant", "content": str}` messages, rendered by a chat
template: the tokenizer's own, or one of Pasero's named templates (`chatml`, `llama-2`, `mistral`, `zephyr`) written
as Jinja templates, which training saves into the tokenizer so that `apply_chat_template`, `pasero-decode --chat`
and `pasero-serve`'s `/v1/chat/completions` render them identically. The loss covers the assistant turns only: a
token is an assistant token when its characters lie in an assistant message's span of the rendered text (offsets
of a fast tokenizer), which stays right where tokenizing each message alone would merge tokens across turns.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")
DEFAULT_PROMPT_TEMPLATE = "{src_lang}: {source}\n{tgt_lang}:"
PROMPT_FIELDS = ("source", "src_lang", "tgt_lang")

# Pasero's chat templates (pasero/tasks/dialogue.py) as Jinja: `bos_token`/`eos_token` come from the tokenizer.
CHAT_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "zephyr": (
        "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    # the system message goes into the first user turn
    "llama-2": (
        "{% if messages and messages[0]['role'] == 'system' %}"
        "{% set system = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}"
        "{% set messages = messages[1:] %}{% else %}{% set system = '' %}{% endif %}"
        "{% for message in messages %}{% if message['role'] == 'user' %}"
        "{{ bos_token }}[INST] {% if loop.first %}{{ system }}{% endif %}{{ message['content'] | trim }} [/INST]"
        "{% else %} {{ message['content'] | trim }} {{ eos_token }}{% endif %}{% endfor %}"
    ),
    # like llama-2 without a system prompt (a system message is dropped, as in Pasero)
    "mistral": (
        "{% for message in messages if message['role'] != 'system' %}{% if message['role'] == 'user' %}"
        "{% if loop.first %}{{ bos_token }}{% endif %}[INST] {{ message['content'] }} [/INST]"
        "{% else %} {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    ),
}
# end-of-turn markers that are not the tokenizer's EOS: generation stops there
CHAT_STOP_SEQUENCES = {"chatml": ["<|im_end|>"]}


class RenderedPrompt(str):
    """Text already rendered with the chat template (e.g. by `pasero-serve`): decoded as is, never re-templated."""


def check_prompt_template(template: str, option: str = "prompt_template") -> None:
    """ValueError naming `option` when `template` lacks `{source}` or uses a field other than source/src_lang/tgt_lang."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ValueError(f"{option}: {template!r} is not a valid template: {error}") from None
    unknown = [name for name in names if name not in PROMPT_FIELDS]
    if unknown:
        raise ValueError(f"{option}: {template!r} uses unknown field(s) {unknown}: use {{source}}, {{src_lang}}, "
                         "{tgt_lang} (write {{ and }} for literal braces)")
    if "source" not in names:
        raise ValueError(f"{option}: {template!r} has no {{source}} field: the source sentence would not be in the prompt")


def render_prompt(template: str, source: str, source_lang: str | None, target_lang: str | None) -> str:
    return template.format(source=source, src_lang=source_lang or "", tgt_lang=target_lang or "")


def chat_template_source(tokenizer: Any, name: str | None) -> str:
    """The Jinja chat template: Pasero's template `name`, else the tokenizer's own (ValueError if there is none)."""
    if name:
        if name not in CHAT_TEMPLATES:
            raise ValueError(f"chat_template: unknown template {name!r}: choose among {', '.join(CHAT_TEMPLATES)} "
                             "(or leave it out to use the tokenizer's own)")
        return CHAT_TEMPLATES[name]
    template = getattr(tokenizer, "chat_template", None)
    if not template or not isinstance(template, str):
        raise ValueError(f"chat_template: the tokenizer ({type(tokenizer).__name__}) has no chat template: name one "
                         f"({', '.join(CHAT_TEMPLATES)})")
    return template


def check_conversation(messages: Any, where: str) -> list[dict[str, str]]:
    """The messages, checked: a non-empty list of {role, content} with a known role and string content."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"{where}: message {index} is not an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"{where}: message {index} has unknown role {role!r} (expected one of {', '.join(ROLES)})")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: message {index} ({role}) has no text 'content'")
    return [{"role": message["role"], "content": message["content"]} for message in messages]


def read_conversations(path: str | Path, max_lines: int | None = None) -> Iterator[tuple[int, list[dict]]]:
    """(line number, messages) of a JSONL file of `{"messages": [...]}` objects; blank lines are skipped.

    Raises ValueError naming the file and line on invalid JSON, a missing `messages` list, an unknown role or a turn
    without content.
    """
    count = 0
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{where}: not UTF-8 text (byte 0x{raw[error.start]:02x})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: invalid JSON: {error.msg}") from None
            if not isinstance(row, dict) or "messages" not in row:
                raise ValueError(f"{where}: expected an object with a 'messages' list")
            messages = check_conversation(row["messages"], where)
            if not any(message["role"] == "assistant" for message in messages):
                raise ValueError(f"{where}: the conversation has no assistant turn (nothing to learn)")
            yield number, messages
            count += 1
            if max_lines is not None and count >= max_lines:
                return


def encode_prompt_pair(tokenizer: Any, prompt: str, target: str | None) -> tuple[list[int], int]:
    """(token ids, prompt length): the prompt with the tokenizer's special tokens, then the target and EOS."""
    ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    prompt_len = len(ids)
    if target is not None:
        ids += list(tokenizer(target, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    return ids, prompt_len


def render_chat(tokenizer: Any, messages: Sequence[dict], template: str, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def encode_conversation(tokenizer: Any, messages: Sequence[dict], template: str) -> tuple[list[int], list[bool]]:
    """(token ids, is-assistant flags) of a whole conversation (the chat template places any BOS/EOS itself).

    The span of assistant message i is the text between the rendering of messages[:i] with the generation prompt
    and that of messages[:i + 1] (Pasero's rule: the generation prompt, e.g. `<|assistant|>\\n`, is not learned;
    the end-of-turn tokens are).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"dialogue training needs a fast tokenizer (character offsets); {type(tokenizer).__name__} "
                         "is not one")
    text = render_chat(tokenizer, messages, template, add_generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:index], template, add_generation_prompt=True) if index else ""
        upto = render_chat(tokenizer, messages[:index + 1], template, add_generation_prompt=False)
        if not text.startswith(upto) or not upto.startswith(before):
            raise ValueError("the chat template does not render conversations incrementally (a prefix of the "
                             "conversation is not a prefix of its rendering): use another chat_template")
        spans.append((len(before), len(upto)))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    flags = [any(start <= begin < end for start, end in spans) for begin, _ in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), flags


def parse_chat_text(text: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """A conversation from text, Pasero's way: "system\\nUser: ...\\nAssistant: ..." (text without these markers is
    one user message); `system_prompt` is added when the text has no system part."""
    lines = text.replace("\\n", "\n").split("\n")
    if not any(line.startswith(("User:", "Assistant:")) for line in lines):
        messages = [{"role": "user", "content": text.strip()}]
    else:
        messages, role, content = [], "system", []
        for line in lines + ["User:"]:  # the sentinel flushes the last message
            marker = "user" if line.startswith("User:") else "assistant" if line.startswith("Assistant:") else None
            if marker is None:
                content.append(line)
                continue
            body = "\n".join(content).strip()
            if body or role != "system":
                messages.append({"role": role, "content": body})
            role, content = marker, [line.split(":", 1)[1]]
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


@dataclass
class PromptFormat:
    """How a causal LM's inputs become prompts (saved in inference.yaml by training, read by `TextGenerator`).

    Attributes:
        task: "lm" (translation prompts through `prompt_template`), "dialogue" (conversations through the chat
            template) or None (inputs are prompts as they are).
        prompt_template: with task "lm": the prompt of each source.
        chat_template: with task "dialogue": the name of one of Pasero's templates (None: the tokenizer's).
        system_prompt: with task "dialogue": a system message added to conversations that have none.
        stop_sequences: generation stops at these strings (not included in the output).
    """

    task: str | None = None
    prompt_template: str | None = None
    chat_template: str | None = None
    system_prompt: str | None = None
    stop_sequences: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in (None, "lm", "dialogue"):
            raise ValueError(f"task: expected lm or dialogue for a causal language model, got {self.task!r}")
        if self.task == "lm":
            self.prompt_template = self.prompt_template or DEFAULT_PROMPT_TEMPLATE
            check_prompt_template(self.prompt_template)
        if self.chat_template is not None and self.chat_template not in CHAT_TEMPLATES:
            chat_template_source(None, self.chat_template)  # raises with the valid names

    @classmethod
    def from_inference_config(cls, content: dict) -> PromptFormat:
        return cls(task=content.get("task") if content.get("task") in ("lm", "dialogue") else None,
                   prompt_template=content.get("prompt_template"), chat_template=content.get("chat_template"),
                   system_prompt=content.get("system_prompt"), stop_sequences=list(content.get("stop_sequences") or []))

    def to_inference_config(self) -> dict[str, Any]:
        content = {"task": self.task, "prompt_template": self.prompt_template, "chat_template": self.chat_template,
                   "system_prompt": self.system_prompt, "stop_sequences": self.stop_sequences or None}
        return {key: value for key, value in content.items() if value is not None}

    def conversation(self, item: str | list) -> list[dict[str, str]]:
        """An input (text, or a list of messages) as a conversation with the system prompt."""
        if isinstance(item, str):
            messages = parse_chat_text(item, self.system_prompt)
        else:
            messages = check_conversation(list(item), "conversation")
            if self.system_prompt and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": self.system_prompt})
        if len(messages) > 1 and messages[-1]["role"] == "assistant" and not messages[-1]["content"].strip():
            messages.pop()  # "...\nAssistant:" asks for the answer: the generation prompt stands for it
        return messages

    def encode(self, tokenizer: Any, items: Sequence[str | list], source_lang: str | None = None,
               target_lang: str | None = None) -> list[list[int]]:
        """Prompt token ids of each input; blank text inputs give [] (nothing is decoded for them)."""
        encoded: list[list[int]] = []
        for item in items:
            if isinstance(item, str) and not item.strip():
                encoded.append([])
            elif isinstance(item, RenderedPrompt):
                encoded.append(list(tokenizer(str(item), add_special_tokens=False)["input_ids"]))
            elif self.task == "dialogue" or not isinstance(item, str):
                template = chat_template_source(tokenizer, self.chat_template)
                text = render_chat(tokenizer, self.conversation(item), template, add_generation_prompt=True)
                encoded.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
            elif self.task == "lm":
                prompt = render_prompt(self.prompt_template, item, source_lang, target_lang)
                encoded.append(encode_prompt_pair(tokenizer, prompt, None)[0])
            else:
                encoded.append(list(tokenizer(item, add_special_tokens=True)["input_ids"]))
        return encoded
