"""Planners, tools, answers and reports (`prosector.agent`).

    from prosector.agent import Session, Agent, Reply, Report
    session = Session.open()                       # PROSECTOR_HOME/workspaces/<new id>
    session.load_scan("ct.nii.gz", seg="seg.nii.gz")
    reply = Agent(session).ask("how big is the spleen?")
    reply.text, reply.mask_ids, reply.measurements, reply.evidence
    report = Agent(session).report("abdomen"); report.markdown; report.to_dict()

`Agent(session, llm=None)` uses the offline planner unless PROSECTOR_LLM (or `llm`) names a chat
model; every number in a reply or report comes from `prosector.measure`, never from a model.
"""
from .types import Reply, Report
from .session import Session
from .agent import Agent

__all__ = ["Agent", "Reply", "Report", "Session"]
