"""Rate limits keyed by the authenticated user (after `CurrentUser`), for routes that start runs.

`ratelimit.rate_limit_chat` keys by the access token's subject without touching the database; routes
where API keys are the usual credential (the OpenAI-compatible and Agent Server APIs) use the user the
key belongs to instead, so all of a user's keys and tokens share one `chat` budget.
"""

from __future__ import annotations

from fastapi import Request

from agentserver.auth.dependencies import CurrentUser
from agentserver.ratelimit import Policy, enforce, get_rate_limiter


async def rate_limit_user_chat(request: Request, user: CurrentUser) -> None:
    limiter = get_rate_limiter(request)
    if not limiter.enabled:
        return
    enforce(request.scope, [await limiter.hit(Policy.chat, "user", str(user.id))])
