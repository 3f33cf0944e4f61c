"""The LLM planner: a LangGraph loop of two nodes (model, tools) over any LangChain chat model.

Tool arguments are validated against each tool's pydantic schema; structure names are re-resolved
through the anatomy tree inside the tools; the loop stops after `max_steps` model turns. The reply's
numbers come from the tools: the model's own wording is kept only if every number and structure in
it is in the tools' evidence, otherwise the tools' sentences are the answer.
"""
from __future__ import annotations

import json
import uuid
from typing import Callable

from langgraph.graph import END, START, MessagesState, StateGraph
from pydantic import ValidationError

from ..grounding import check, numbers_in
from ..llm.models import LLMUnavailable
from ..templates import prompt_text
from ..tools import TOOLS, build_tools
from ..tools.common import ToolResult
from ..types import Reply, Report

_WITH_PROGRESS = {"segment", "measure", "compare", "answer", "draft_report"}


class LLMPlanner:
    name = "llm"

    def __init__(self, agent, model, max_steps: int = 6):
        self.agent = agent
        self.session = agent.session
        self.model = model
        self.max_steps = max_steps
        self._graph = None
        self._results: list[tuple[str, ToolResult]] = []
        self._progress = None
        self._step: Callable[[str], None] = lambda s: None

    # -- the graph -----------------------------------------------------------------------------
    def graph(self):
        if self._graph is None:
            bound = self._bind()

            def model_node(state: MessagesState):
                try:
                    message = bound.invoke(state["messages"])
                except LLMUnavailable:
                    raise
                except Exception as err:  # endpoint down, timeout, garbage from the server
                    raise LLMUnavailable(f"{type(err).__name__}: {str(err)[:200]}") from None
                if message.id and any(m.id == message.id for m in state["messages"]):
                    # A replayed message with a known id would replace, not extend, the conversation.
                    message = message.model_copy(update={"id": str(uuid.uuid4())})
                self.session.log("model", {"content": message.content if isinstance(message.content, str) else str(message.content),
                                           "tool_calls": getattr(message, "tool_calls", []),
                                           "invalid_tool_calls": getattr(message, "invalid_tool_calls", [])})
                return {"messages": [message]}

            def route(state: MessagesState):
                last = state["messages"][-1]
                return "tools" if getattr(last, "tool_calls", None) or getattr(last, "invalid_tool_calls", None) else END

            builder = StateGraph(MessagesState)
            builder.add_node("model", model_node)
            builder.add_node("tools", self._tools_node)
            builder.add_edge(START, "model")
            builder.add_conditional_edges("model", route, ["tools", END])
            builder.add_edge("tools", "model")
            self._graph = builder.compile()
        return self._graph

    def _bind(self):
        tools = build_tools(self.session)
        from ..llm.local import LocalChatModel

        try:
            if isinstance(self.model, LocalChatModel):
                return self.model.bind_tools(tools, tool_choice="any")  # a small model must be made to call
            return self.model.bind_tools(tools)
        except NotImplementedError:
            return self.model  # a scripted test model emits its tool calls without being bound

    def _tools_node(self, state):
        from langchain_core.messages import ToolMessage

        last = state["messages"][-1]
        out = []
        for call in getattr(last, "invalid_tool_calls", None) or []:
            message = f"malformed tool call ({call.get('error') or 'unparseable'}); call a tool with JSON arguments"
            self._log_call(call.get("name") or "", call.get("args"), None, message)
            out.append(ToolMessage(json.dumps({"ok": False, "error": message}), name=call.get("name") or "invalid",
                                   tool_call_id=call.get("id") or "invalid"))
        for call in last.tool_calls:
            result = self.call_tool(call["name"], call.get("args") or {})
            out.append(ToolMessage(result.for_model(), name=call["name"], tool_call_id=call["id"]))
        return {"messages": out}

    # -- one tool call -------------------------------------------------------------------------
    def call_tool(self, name: str, args) -> ToolResult:
        """Validate, run, log. Wrong names and arguments come back as an error result for the model."""
        module = TOOLS.get(name)
        if module is None:
            result = ToolResult(ok=False, error=f"no tool named {name!r}; tools: {', '.join(TOOLS)}")
            result.text = result.error
            self._log_call(name, args, result, result.error)
            return result
        if not isinstance(args, dict):
            args = {}
        try:
            validated = module.Args.model_validate(args)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in err.errors())
            message = f"invalid arguments for {name}: {problems}"
            result = ToolResult(ok=False, text=message, error=message)
            self._log_call(name, args, result, message)
            return result
        kwargs = validated.model_dump()
        if name in _WITH_PROGRESS:
            kwargs["progress"] = self._progress
        if name == "draft_report":
            kwargs["chat_model"] = self.model
        self._step(f"tool: {name}({json.dumps(validated.model_dump(), default=str)})")
        result = module.run(self.session, **kwargs)
        for line in result.steps:
            self._step(line)
        if not result.ok:
            self._step(f"tool {name} failed: {result.error}")
        self._results.append((name, result))
        self._log_call(name, validated.model_dump(), result, result.error)
        return result

    def _log_call(self, name, args, result: ToolResult | None, error: str | None) -> None:
        self.session.log("tool_call", {"tool": name, "args": args})
        self.session.log("tool_result", {"tool": name, "ok": error is None,
                                         "result": result.model_dump(exclude={"measurements"}) if result else None,
                                         "error": error})

    # -- a request ---------------------------------------------------------------------------------
    def ask(self, text: str, progress=None, step: Callable[[str], None] = lambda s: None) -> Reply:
        from langchain_core.messages import HumanMessage, SystemMessage
        from langgraph.errors import GraphRecursionError

        self._results, self._progress, self._step = [], progress, step
        messages = [SystemMessage(prompt_text("system.md")), HumanMessage(text)]
        final, cut_off = "", False
        try:
            state = self.graph().invoke({"messages": messages}, config={"recursion_limit": 2 * self.max_steps + 1})
            last = state["messages"][-1]
            final = last.content if last.type == "ai" and isinstance(last.content, str) else ""
            if final and (last.response_metadata or {}).get("finish_reason") == "length":
                step("model answer cut off at its token limit: not used")
                final = ""  # half a sentence is no answer; the tools' sentences stand instead
        except GraphRecursionError:
            cut_off = True
        return self._reply(final, cut_off)

    def _reply(self, final: str, cut_off: bool) -> Reply:
        ok = [r for _, r in self._results if r.ok]
        failed = [r for _, r in self._results if not r.ok]
        evidence = [e for r in ok for e in r.evidence]
        reply = Reply("", planner="llm")
        for r in ok:
            reply.mask_ids += [m for m in r.mask_ids if m not in reply.mask_ids]
            reply.measurements += [m for m in r.measurements if m.get("mask_id") not in
                                   {x.get("mask_id") for x in reply.measurements}]
            reply.warnings += [w for w in r.warnings if w not in reply.warnings]
        reply.evidence = [{"sentence": e.sentence, "structures": e.structures,
                           "numbers": [n.model_dump() for n in e.numbers]} for e in evidence]
        for name, r in self._results:
            if name == "draft_report" and r.ok and getattr(r, "report", None):
                reply.report = Report(**r.report)
        grounded = "\n".join(r.text for r in ok if r.text)
        allowed_numbers = [n.value for e in evidence for n in e.numbers] + numbers_in(grounded)
        allowed_structures = {s for e in evidence for s in e.structures} | set(reply.mask_ids)
        problems = check(final, allowed_numbers, allowed_structures) if final.strip() else ["no final answer"]
        if cut_off:
            reply.text = (f"The language model did not finish within {self.max_steps} steps, so I stopped it."
                          + (f" What the tools found: {grounded}" if grounded else " Nothing was measured."))
            reply.error = None if grounded else reply.text
            reply.exit_code = 0 if grounded else 1
        elif not problems:
            reply.text = final.strip()
        elif grounded:
            reply.text = grounded
            if final.strip():
                reply.warnings.append("the model's wording was replaced by the tools' sentences: " + "; ".join(problems))
        elif failed:
            reply.text = failed[-1].error or "the tool call failed"
            reply.error, reply.exit_code = reply.text, 2
        else:
            reply.text = ("The language model answered without consulting the scan, and its answer named numbers or "
                          "structures I cannot verify, so I do not repeat it. Ask again, or use the offline planner.")
            reply.error, reply.exit_code = reply.text, 1
        return reply
