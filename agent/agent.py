"""The Agent: one entry point for a request in words, whichever planner serves it."""
from __future__ import annotations

import os
import time
import traceback
from typing import Callable

from prosector.errors import ProsectorError

from .session import Session
from .types import Reply, Report

MAX_REQUEST_CHARS = 2000


class Agent:
    """`ask` plans and answers one request; `report` drafts findings. Both log to the session."""

    def __init__(self, session: Session, llm: str | None = None, max_steps: int = 6):
        self.session = session
        # An explicit spec wins; "offline" (or "none") forces the rule planner even when PROSECTOR_LLM is set.
        spec = llm if llm is not None else os.environ.get("PROSECTOR_LLM")
        self.llm_spec = None if not spec or spec.strip().lower() in ("offline", "none") else spec.strip()
        self.max_steps = max_steps
        self._offline = None
        self._llm_planner = None
        self._chat_model = None

    # -- planners ---------------------------------------------------------------------------
    def offline_planner(self):
        if self._offline is None:
            from .planners.offline import OfflinePlanner

            self._offline = OfflinePlanner(self)
        return self._offline

    def chat_model(self):
        """The configured chat model (loaded once), or None when no LLM is configured."""
        if self.llm_spec and self._chat_model is None:
            from .llm.models import load_chat_model

            self._chat_model = load_chat_model(self.llm_spec)
        return self._chat_model

    def llm_planner(self):
        if self._llm_planner is None:
            from .planners.llm import LLMPlanner

            self._llm_planner = LLMPlanner(self, self.chat_model(), max_steps=self.max_steps)
        return self._llm_planner

    # -- requests -----------------------------------------------------------------------------
    def ask(self, text: str, progress: Callable[[float, str], None] | None = None,
            on_step: Callable[[str], None] | None = None) -> Reply:
        started = time.perf_counter()
        steps: list[str] = []

        def step(line: str) -> None:
            steps.append(line)
            if on_step:
                on_step(line)

        if not isinstance(text, str) or not text.strip():
            reply = Reply("Please ask a question about the scan.", error="empty request", exit_code=2)
        elif len(text) > MAX_REQUEST_CHARS:
            reply = Reply(f"That request is too long ({len(text)} characters; at most {MAX_REQUEST_CHARS}).",
                          error="request too long", exit_code=2)
        else:
            self.session.log("user", {"text": text})
            reply = self._plan(text, progress, step)
        reply.steps = steps + [s for s in reply.steps if s not in steps]
        self.session.log("reply", {"seconds": round(time.perf_counter() - started, 4), **reply.to_dict()})
        return reply

    def _plan(self, text: str, progress, step) -> Reply:
        try:
            if self.llm_spec:
                from .llm.models import LLMUnavailable

                try:
                    planner = self.llm_planner()
                    step(f"planner: llm ({self.llm_spec})")
                    return planner.ask(text, progress=progress, step=step)
                except LLMUnavailable as err:
                    # The endpoint is down or returns garbage: the rules still answer, and say so.
                    step(f"planner: offline (LLM unavailable: {err})")
                    reply = self.offline_planner().ask(text, progress=progress, step=step)
                    reply.warnings.insert(0, f"the language model is unavailable ({err}); answered by the offline planner")
                    return reply
            step("planner: offline")
            return self.offline_planner().ask(text, progress=progress, step=step)
        except ProsectorError as err:
            message = err.user_message()
            return Reply(message, error=message, exit_code=err.exit_code)
        except Exception as err:  # a bug must not reach the user as a traceback; the log keeps it
            self.session.log("internal_error", {"error": repr(err), "traceback": traceback.format_exc()})
            message = f"Something went wrong inside Prosector ({type(err).__name__}: {err}); nothing was answered."
            return Reply(message, error=message, exit_code=1)

    def report(self, region: str | None = None, progress: Callable[[float, str], None] | None = None) -> Report:
        """Findings for a region (abdomen, chest, pelvis, spine) or the whole scan, each sentence with evidence."""
        from .drafting import draft_report

        model, unavailable = None, None
        if self.llm_spec:
            from .llm.models import LLMUnavailable

            try:
                model = self.chat_model()
            except LLMUnavailable as err:
                unavailable = f"the language model is unavailable ({err}); the template wording is used"
        report = draft_report(self.session, region, chat_model=model, progress=progress)
        if unavailable:
            report.warnings.insert(0, unavailable)
        self.session.log("report", report.to_dict())
        return report
