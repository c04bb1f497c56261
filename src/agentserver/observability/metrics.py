"""Every Prometheus metric the app exports, in one place: the contract for dashboards and alerts.

Collectors are process-wide (prometheus-client's default registry), which is what a scrape of one
process expects. Labels are bounded: route *templates*, model names from the registry/settings, tool
names, fixed outcome words. Never raw paths, user ids or message text (one exception, bounded: the top-N
spenders gauge below).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
LLM_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)

# --- HTTP ------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "agentserver_http_requests_total",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "agentserver_http_request_duration_seconds",
    "HTTP request latency by method and route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENT_LOOP_LAG = Histogram(
    "agentserver_event_loop_lag_seconds",
    "How late the event loop ran a timer (observability/loop_lag.py): its responsiveness",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ACTIVE_STREAMS = Gauge("agentserver_active_streams", "Open chat streams by transport (sse|websocket)", ["transport"])

# --- LLM (outcome: success | error | timeout | rate_limited) ---------------------------------------
LLM_CALLS = Counter("agentserver_llm_calls_total", "LLM calls by model and outcome", ["model", "outcome"])
LLM_LATENCY = Histogram(
    "agentserver_llm_call_duration_seconds", "LLM call latency by model", ["model"], buckets=LLM_LATENCY_BUCKETS
)
LLM_TOKENS = Counter(
    "agentserver_llm_tokens_total", "LLM tokens by model and direction (input|output)", ["model", "direction"]
)
LLM_COST = Counter("agentserver_llm_cost_usd_total", "LLM cost in US dollars by model", ["model"])
LLM_RETRIES = Counter("agentserver_llm_retries_total", "LLM call retries by model and reason", ["model", "reason"])
LLM_FALLBACKS = Counter("agentserver_llm_fallbacks_total", "Switches to a fallback model", ["from_model", "to_model"])
LLM_PREEMPTIONS = Counter(
    "agentserver_llm_background_preemptions_total",
    "Background model calls (memory extraction) cancelled to let a chat call run, then restarted",
)

# --- tools (outcome: success | error | timeout) -----------------------------------------------------
TOOL_CALLS = Counter("agentserver_tool_calls_total", "Agent tool calls by tool and outcome", ["tool", "outcome"])
TOOL_LATENCY = Histogram(
    "agentserver_tool_duration_seconds", "Agent tool latency by tool", ["tool"], buckets=LATENCY_BUCKETS
)

# --- chat -------------------------------------------------------------------------------------------
CHAT_TURNS = Counter(
    "agentserver_chat_turns_total",
    "Chat turns by outcome (complete|error|cancelled|rolled_back|interrupted|max_tool_rounds|conflict)",
    ["outcome"],
)

# --- runs and jobs ------------------------------------------------------------------------------------
RUNS_ACTIVE = Gauge("agentserver_runs_active", "Runs executing in this worker")
RUNS_RECOVERED = Counter(
    "agentserver_runs_recovered_total",
    "Runs whose worker stopped heartbeating, by what became of them (pending: resumed elsewhere | error | cancelled)",
    ["outcome"],
)
JOBS = Counter(
    "agentserver_jobs_total",
    "Background jobs by kind and outcome (done|skipped|retried|failed)",
    ["kind", "outcome"],
)
JOBS_QUEUED = Gauge(
    "agentserver_jobs_queued", "Background jobs waiting or running, by kind and status", ["kind", "status"]
)

# --- long-term memory (operation: search | add | delete | list; outcome: success | error, plus
# search/timeout: a chat run went on without memories) ----------------------------------------------
MEMORY_OPERATIONS = Counter(
    "agentserver_memory_operations_total", "Memory operations by operation and outcome", ["operation", "outcome"]
)
MEMORY_LATENCY = Histogram(
    "agentserver_memory_operation_duration_seconds",
    "Memory operation latency by operation",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)

# --- database connection pool (read from the engine's pool at scrape time by observability/db_pool.py;
# pool: app; state: checked_out | idle | overflow) ------------------------------------------------
DB_POOL_CONNECTIONS = "agentserver_db_pool_connections"
DB_POOL_MAX_CONNECTIONS = "agentserver_db_pool_max_connections"

# --- dependencies (set by every /ready check: the readiness probe keeps them fresh) -------------------
DEPENDENCY_UP = Gauge(
    "agentserver_dependency_up",
    "Whether a dependency answered its last readiness check (1) or not (0); dependency: database | llm | redis",
    ["dependency"],
)
EMBEDDED_POSTGRES_RESTARTS = Counter(
    "agentserver_embedded_postgres_restarts_total",
    "Restarts of the embedded PostgreSQL after it died, by outcome (success | failure)",
    ["outcome"],
)

# --- rate limits and cache ----------------------------------------------------------------------------
RATE_LIMITED = Counter("agentserver_rate_limited_total", "Requests refused with 429 by policy", ["policy"])
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "agentserver_rate_limit_storage_errors_total", "Rate-limit storage failures (requests were let through)"
)
CACHE_REQUESTS = Counter("agentserver_cache_requests_total", "Response cache lookups by result (hit|miss)", ["result"])
CACHE_ERRORS = Counter(
    "agentserver_cache_errors_total", "Response cache storage failures (lookups became misses, stores were skipped)"
)

# --- usage and quotas -----------------------------------------------------------------------------------
QUOTA_REFUSALS = Counter(
    "agentserver_quota_refusals_total",
    "Runs refused by a user budget, by period (day|month), kind (tokens|cost_usd) and reason (spent|busy)",
    ["period", "kind", "reason"],
)
# Bounded by USAGE_TOP_USERS per period (the label set is replaced on every refresh): the top spenders by
# user id, never by email and never one series per user. Set by every worker process from the database.
USAGE_TOP_USER_COST = Gauge(
    "agentserver_usage_top_user_cost_usd",
    "Cost in US dollars of the top spenders of the current UTC day and month, by period and user id",
    ["period", "user_id"],
)
USAGE_TOP_USER_TOKENS = Gauge(
    "agentserver_usage_top_user_tokens",
    "Tokens (input + output) of the top spenders of the current UTC day and month, by period and user id",
    ["period", "user_id"],
)
