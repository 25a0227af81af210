"""Agents: plugins that plan and run several skills for one request (``PlannedAgent``)."""
