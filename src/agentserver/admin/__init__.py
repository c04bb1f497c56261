"""Operators: the admin role, usage across users, per-user quotas, and the `agentserver users` CLI."""
