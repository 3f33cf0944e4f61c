"""A local Hugging Face causal LM as a LangChain chat model with tool calling by prompt and parsing.

Small local models have no native tool-call API: the tools are described in the system prompt, and
a call is `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` in the output. With
tool_choice="any" the first turn is prefilled with `<tool_call>{"name": "` so the model must call
one (the way grammar-constrained local servers force a call); what it writes is parsed, and a
malformed call comes back as an invalid tool call for the loop to report, never as a guess.
"""
from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from .models import LLMUnavailable

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_PREFILL = '<tool_call>{"name": "'
_LOADED: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def _load(path: str):
    """Tokenizer and model, loaded once per process (a GGUF is de-quantised by transformers + gguf)."""
    with _LOCK:
        if path not in _LOADED:
            from pathlib import Path

            try:
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError:
                raise LLMUnavailable("transformers is not installed") from None
            p = Path(path)
            kwargs = {"gguf_file": p.name} if p.suffix == ".gguf" else {}
            folder = str(p.parent if p.suffix == ".gguf" else p)
            try:
                tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
            except Exception as err:
                raise LLMUnavailable(f"cannot load the local model {path}: {type(err).__name__}: {err}") from None
            model.eval()
            _LOADED[path] = (tokenizer, model)
        return _LOADED[path]


class LocalChatModel(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    max_new_tokens: int = 48
    tools: list[dict] = []
    tool_choice: str | None = None
    _last_prompt: str = PrivateAttr(default="")

    @property
    def _llm_type(self) -> str:
        return "prosector-local-hf"

    def bind_tools(self, tools, *, tool_choice: str | None = None, **kwargs):
        return self.model_copy(update={"tools": [convert_to_openai_tool(t) for t in tools],
                                       "tool_choice": tool_choice})

    # -- prompt --------------------------------------------------------------------------------
    def _tool_text(self) -> str:
        lines = ["You can call these tools:"]
        for tool in self.tools:
            fn = tool["function"]
            args = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in fn.get("parameters", {}).get("properties", {}).items())
            lines.append(f"- {fn['name']}({args}): {fn.get('description', '').splitlines()[0] if fn.get('description') else ''}")
        # A concrete example: small models copy a placeholder like "TOOL" literally.
        lines.append('To call a tool, answer only with one line such as: '
                     '<tool_call>{"name": "answer", "arguments": {"question": "how big is the liver?"}}</tool_call>')
        return "\n".join(lines)

    def _chat(self, messages: list[BaseMessage]) -> list[dict]:
        out: list[dict] = []
        for message in messages:
            if message.type == "system":
                out.append({"role": "system", "content": str(message.content)})
            elif message.type == "human":
                out.append({"role": "user", "content": str(message.content)})
            elif isinstance(message, ToolMessage):
                # The chat template has no tool role: a result is shown to the model as user text.
                out.append({"role": "user", "content": f"Result of {message.name}: {message.content}"})
            elif isinstance(message, AIMessage):
                calls = "".join(f'<tool_call>{json.dumps({"name": c["name"], "arguments": c["args"]})}</tool_call>'
                                for c in message.tool_calls)
                out.append({"role": "assistant", "content": (str(message.content) + calls) or "(no answer)"})
        if self.tools:
            if out and out[0]["role"] == "system":
                out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + self._tool_text()}
            else:
                out.insert(0, {"role": "system", "content": self._tool_text()})
        return out

    # -- generation ----------------------------------------------------------------------------
    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs) -> ChatResult:
        import torch

        tokenizer, model = _load(self.model_path)
        prompt = tokenizer.apply_chat_template(self._chat(messages), add_generation_prompt=True, tokenize=False)
        # Force a call on the request turn only; after a tool result the model may answer in words.
        force = bool(self.tools) and self.tool_choice in ("any", "required") and messages[-1].type == "human"
        if force:
            prompt += _PREFILL
        self._last_prompt = prompt
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            # Stop at the end of a call: the loop needs nothing after it, and CPU tokens are dear.
            output = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.eos_token_id, stop_strings=["</tool_call>"],
                                    tokenizer=tokenizer)
        new_tokens = output[0][inputs["input_ids"].shape[1]:]
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        if force:
            text = _PREFILL + text
        message = self._message(text)
        ended = len(new_tokens) < self.max_new_tokens or int(new_tokens[-1]) == tokenizer.eos_token_id
        message.response_metadata["finish_reason"] = "stop" if ended or message.tool_calls else "length"
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _message(self, text: str) -> AIMessage:
        calls, invalid = [], []
        for raw in _CALL.findall(text):
            parsed = _parse_call(raw)
            if parsed is None:
                invalid.append({"name": _guess_name(raw), "args": raw, "id": f"call_{uuid.uuid4().hex[:8]}",
                                "error": "not a JSON tool call", "type": "invalid_tool_call"})
            else:
                calls.append({"name": parsed[0], "args": parsed[1], "id": f"call_{uuid.uuid4().hex[:8]}",
                              "type": "tool_call"})
        content = _CALL.sub("", text).strip()
        return AIMessage(content=content, tool_calls=calls, invalid_tool_calls=invalid)


def _parse_call(raw: str) -> tuple[str, dict] | None:
    """`{"name": ..., "arguments": {...}}`, tolerating a cut-off tail by closing open brackets."""
    raw = raw.strip()
    for candidate in (raw, _close(raw)):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            args = value.get("arguments", value.get("parameters", {}))
            return value["name"], args if isinstance(args, dict) else {"value": args}
    return None


def _close(raw: str) -> str:
    """Close the strings and brackets a generation cut short (max_new_tokens) left open."""
    stack, in_string, escaped = [], False, False
    for ch in raw:
        if in_string:
            escaped = ch == "\\" and not escaped
            if ch == '"' and not escaped:
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    return raw + ('"' if in_string else "") + "".join(reversed(stack))


def _guess_name(raw: str) -> str:
    found = re.search(r'"name"\s*:\s*"([^"]*)', raw)
    return found.group(1) if found else ""
