"""The LLM planner's loop with scripted chat models (LangChain's fake chat models, named as such):
multi-step flows, argument validation, re-resolution of invented names, step limit, a dead endpoint."""
from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage

from conftest import TOTALSEG
from prosector.agent import Agent, Session
from prosector.agent.grounding import numbers_in

CT = TOTALSEG / "example_ct.nii.gz"
SEG = TOTALSEG / "example_seg_fast_force_split.nii.gz"


def call(name: str, args, n: int = 1) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{name}_{n}"}])


@pytest.fixture(scope="module")
def session():
    s = Session.open("llm-scripted")
    s.load_scan(CT, seg=SEG)
    return s


def scripted(session, responses, max_steps: int = 6) -> Agent:
    """An agent whose chat model is a script: FakeMessagesListChatModel replays these messages."""
    agent = Agent(session, llm="scripted-test-model", max_steps=max_steps)
    agent._chat_model = FakeMessagesListChatModel(responses=responses)
    return agent


def tool_log(session, since: int) -> list[dict]:
    return [e for e in session.history()[since:] if e["kind"] in ("tool_call", "tool_result")]


def test_multi_step_flow_with_an_invented_name(session):
    start = len(session.history())
    agent = scripted(session, [
        call("find_structures", {"query": "left kidny"}),
        call("compare", {"a": "left kidny", "b": "kidney_right"}, 2),
        AIMessage("Checked."),
    ])
    reply = agent.ask("is the left kidney smaller than the right?")
    assert reply.planner == "llm" and reply.error is None
    assert set(reply.mask_ids) == {"kidney_left", "kidney_right"}
    assert reply.text == "Checked."  # no number, no structure: the model's wording may stand
    results = [e for e in tool_log(session, start) if e["kind"] == "tool_result"]
    assert [r["tool"] for r in results] == ["find_structures", "compare"]
    # The misspelt name never reached an engine raw: it was resolved to the tree's id first.
    assert results[1]["result"]["resolved"]["left kidny"] == ["kidney_left"]
    assert any("resolved: left kidney [kidney_left]" in s for s in reply.steps)


def test_invented_numbers_in_the_final_wording_are_replaced(session):
    agent = scripted(session, [call("measure", {"structures": ["spleen"]}),
                               AIMessage("The spleen is 999.9 mL and the pancreas looks fine.")])
    reply = agent.ask("how big is the spleen?")
    spleen = session.measurement("spleen")
    assert f"{spleen.volume_ml:.1f} mL" in reply.text and "999.9" not in reply.text
    assert any("wording was replaced" in w for w in reply.warnings)
    evidence = {n["value"] for e in reply.evidence for n in e["numbers"]}
    assert all(v in evidence or v in numbers_in(" ".join(e["sentence"] for e in reply.evidence))
               for v in numbers_in(reply.text))


def test_faithful_final_wording_is_kept(session):
    volume = f"{session.measurement('spleen').volume_ml:.1f}" if "spleen" in session.measurements else None
    agent = scripted(session, [call("answer", {"question": "how big is the spleen?"}),
                               AIMessage("placeholder")])
    agent.ask("how big is the spleen?")
    volume = f"{session.measurement('spleen').volume_ml:.1f}"
    agent = scripted(session, [call("answer", {"question": "how big is the spleen?"}),
                               AIMessage(f"The spleen measures at least {volume} mL.")])
    reply = agent.ask("how big is the spleen?")
    assert reply.text == f"The spleen measures at least {volume} mL."


def test_wrong_arguments_and_unknown_tools_come_back_as_errors(session):
    start = len(session.history())
    agent = scripted(session, [
        AIMessage("", tool_calls=[
            {"name": "segment", "args": {"structures": "liver"}, "id": "a"},          # not a list
            {"name": "measure", "args": {}, "id": "b"},                              # missing argument
            {"name": "delete_everything", "args": {}, "id": "c"},                    # no such tool
            {"name": "segment", "args": {"structures": ["liver"], "engine": "magic"}, "id": "d"},
        ]),
        AIMessage("I could not do it."),
    ])
    reply = agent.ask("segment the liver")
    results = [e for e in tool_log(session, start) if e["kind"] == "tool_result"]
    errors = [r["error"] for r in results]
    assert "invalid arguments for segment: structures" in errors[0]
    assert "invalid arguments for measure: structures" in errors[1]
    assert "no tool named 'delete_everything'" in errors[2]
    assert "unknown engine 'magic'" in errors[3]
    assert reply.mask_ids == [] and numbers_in(reply.text) == []


def test_unknown_structure_never_reaches_an_engine(session, monkeypatch):
    import prosector.agent.session as session_module

    ran = []
    monkeypatch.setattr(session_module.Session, "ensure_masks",
                        lambda self, *a, **k: ran.append(a) or (_ for _ in ()).throw(AssertionError("engine reached")))
    agent = scripted(session, [call("segment", {"structures": ["tumour"]}), AIMessage("Sorry.")])
    reply = agent.ask("segment the tumour")
    assert ran == []
    assert reply.mask_ids == [] and "tumor" in json.dumps(session.history()[-3:])


def test_looping_model_is_cut_off_with_an_honest_message(session):
    agent = scripted(session, [call("session", {})], max_steps=3)  # replays the same call forever
    reply = agent.ask("what is loaded?")
    assert "did not finish within 3 steps" in reply.text


def test_malformed_model_output_is_reported_not_guessed(session):
    garbage = AIMessage("", invalid_tool_calls=[{"name": "measure", "args": "{structures: [spleen", "id": "x",
                                                  "error": "bad JSON", "type": "invalid_tool_call"}])
    agent = scripted(session, [garbage, AIMessage("The spleen is 12.3 mL.")])
    reply = agent.ask("how big is the spleen?")
    assert "12.3" not in reply.text and reply.error
    assert reply.mask_ids == []


class DeadEndpoint(FakeMessagesListChatModel):
    """A scripted model whose server is down: every call fails like a refused connection."""

    def _generate(self, *args, **kwargs):
        raise ConnectionError("Connection refused: http://localhost:9/v1")


def test_dead_endpoint_falls_back_to_the_offline_planner(session):
    agent = Agent(session, llm="openai:gpt-4o-mini")
    agent._chat_model = DeadEndpoint(responses=[AIMessage("unused")])
    reply = agent.ask("how big is the spleen?")
    assert reply.planner == "offline" and reply.error is None
    assert any("language model is unavailable" in w for w in reply.warnings)
    assert f"{session.measurement('spleen').volume_ml:.1f} mL" in reply.text


def test_unusable_spec_falls_back_too(session):
    reply = Agent(session, llm="not-a-provider-or-path").ask("is the brain in the scan?")
    assert reply.planner == "offline" and reply.text.startswith("No:")
    assert any("neither provider:model" in w for w in reply.warnings)


def test_tools_back_the_python_api(session):
    from prosector.agent.tools import TOOLS

    result = TOOLS["measure"].run(session, structures=["right kidney"])
    assert result.ok and result.mask_ids == ["kidney_right"]
    assert result.numbers[0].value == round(session.measurement("kidney_right").volume_ml, 1)
    bad = TOOLS["compare"].run(session, a="spleen", b="flux capacitor of the tumour")
    assert not bad.ok and bad.error and bad.numbers == []
    refs = TOOLS["reference_values"].run(session, structure="spleen")
    assert "Prassopoulos" in refs.text
    assert TOOLS["session"].run(session).summary["scan"]["path"].endswith("example_ct.nii.gz")
