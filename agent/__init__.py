"""Planners, tools, answers and reports (`prosector.agent`)."""
