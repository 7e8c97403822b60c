"""Adapters that let agent frameworks keep their state in a session-persistence store.

* :mod:`session_persistence.integrations.openai_agents` — ``AgentsSession``, the OpenAI
  Agents SDK's ``Session`` protocol on any store (the ``agents`` extra).
"""
