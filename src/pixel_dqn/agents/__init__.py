"""Agents: each exposes ``act`` and ``update -> metrics``."""
