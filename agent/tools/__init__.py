"""The agent's tools, one module each: typed arguments (pydantic), typed results, LLM-facing text in prompts/.

    from prosector.agent.tools import TOOLS, build_tools
    TOOLS["measure"].run(session, structures=["spleen"])      # the Python face
    build_tools(session)                                       # LangChain StructuredTools for a planner
"""
from __future__ import annotations

from types import ModuleType

from . import answer, compare, draft_report, export, find_structures, measure, reference_values, segment, session
from .common import Evidence, Number, ToolResult, description

TOOLS: dict[str, ModuleType] = {m.NAME: m for m in (find_structures, segment, measure, compare, reference_values,
                                                     answer, draft_report, session, export)}


def build_tools(bound_session) -> list:
    """LangChain StructuredTools bound to a session (built on demand: langchain loads only here)."""
    from langchain_core.tools import StructuredTool

    tools = []
    for name, module in TOOLS.items():
        def call(_module=module, **kwargs):
            return _module.run(bound_session, **kwargs).for_model()

        tools.append(StructuredTool.from_function(func=call, name=name, description=description(name),
                                                  args_schema=module.Args))
    return tools


__all__ = ["Evidence", "Number", "TOOLS", "ToolResult", "build_tools"]
