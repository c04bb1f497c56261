"""The LangGraph Agent Server API (threads, runs, assistants) over sessions and runs."""
