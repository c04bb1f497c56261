"""The LLM layer: model registry, provider factory, retries and fallback, usage and cost, the embedded model.

The app builds one `LLMService` in its lifespan (`state["llm"]`); the agent asks it for a chat model with
tools bound (`llm.chat_model(tools)`) and gets a runnable that retries, falls back, and records usage.
"""
