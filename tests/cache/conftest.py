from tests.ratelimit.apps import apps, redis_prefix

__all__ = ["apps", "redis_prefix"]
