"""Settings: one pydantic-settings class, read from the environment and `.env`.

Every setting is documented with its default in `.env.example`. Production refuses to start with
settings that are only safe on a laptop (see `Settings._production_guards`).
"""

from __future__ import annotations

import enum
import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Development default for JWT_SECRET_KEY: it works out of the box on a laptop and production refuses it.
DEFAULT_JWT_SECRET = "insecure-development-secret-change-me"  # noqa: S105 - refused in production
MIN_JWT_SECRET_LENGTH = 32
MIN_PRODUCTION_PASSWORD_HASH_MEMORY_KIB = 19_456  # OWASP's argon2id floor (19 MiB)


class Environment(enum.StrEnum):
    development = "development"
    test = "test"
    production = "production"


class LLMProvider(enum.StrEnum):
    auto = "auto"  # openai / anthropic / openai_compatible when configured, else the embedded local model
    local = "local"
    openai = "openai"
    anthropic = "anthropic"
    openai_compatible = "openai_compatible"
    google = "google"
    fake = "fake"  # the deterministic scripted model; tests and demos only


CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: Any) -> Any:
    """Lists come from the environment as `a,b,c` (or JSON), which is what people type."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    # env_ignore_empty: `DATABASE_URL=` in .env means "unset", as people expect.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    # --- application -------------------------------------------------------------------------
    environment: Environment = Environment.development
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # console in development, json in production when unset
    log_format: Literal["console", "json"] | None = None
    agentserver_data_dir: Path = Path(".data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    # --- storage -----------------------------------------------------------------------------
    # Unset: an embedded PostgreSQL (with pgvector) is started under AGENTSERVER_DATA_DIR.
    database_url: str | None = None
    # Per process: the app pool opens up to POOL_SIZE + MAX_OVERFLOW connections, the agent's
    # checkpointer pool up to POOL_SIZE, memory's up to MEMORY_THREADS (see README, Operations).
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    # Longest wait for a free pooled connection; past it the request is a 503 with Retry-After.
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    database_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    redis_url: str | None = None
    # Prefix of every Redis key this app writes: deployments (or test runs) sharing a Redis stay apart.
    redis_key_prefix: str = Field(default="agentserver", min_length=1, max_length=64)

    # --- auth --------------------------------------------------------------------------------
    jwt_secret_key: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: int = Field(default=30, ge=1)
    refresh_token_expire_days: int = Field(default=7, ge=1)
    # argon2id cost (RFC 9106's second recommendation: t=3, 64 MiB, 4 lanes). Tests lower it to stay fast;
    # production refuses less than OWASP's minimum memory.
    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=65_536, ge=32, le=4_194_304)

    # --- rate limits (syntax of the `limits` library: "N/second|minute|hour|day") --------------
    rate_limit_enabled: bool = True
    rate_limit_default: str = "300/minute"
    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "5/minute"
    rate_limit_chat: str = "30/minute"
    rate_limit_chat_anonymous: str = "10/minute"

    # --- HTTP hardening ------------------------------------------------------------------------
    cors_origins: CommaList = ["http://127.0.0.1:8000", "http://localhost:8000"]
    trusted_hosts: CommaList = ["*"]
    # Client IP is taken from X-Forwarded-For only when the direct peer is one of these.
    trusted_proxies: CommaList = []
    max_request_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Production only: redirect plain HTTP to HTTPS (X-Forwarded-Proto is believed from TRUSTED_PROXIES only).
    https_redirect: bool = False

    # --- LLM -----------------------------------------------------------------------------------
    llm_provider: LLMProvider = LLMProvider.auto
    default_model: str | None = None  # unset: the provider's default (see llm/registry.py)
    fallback_models: CommaList = []
    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    google_api_key: SecretStr | None = None
    llm_base_url: str | None = None  # any OpenAI-compatible server: vLLM, Ollama, llama.cpp
    llm_api_key: SecretStr | None = None  # key for LLM_BASE_URL, if it wants one
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_deadline_seconds: float = Field(default=180.0, gt=0)
    # Chosen by the eval (evals/results/): the 1.5B meets every target on 2 cores; the 0.5B is faster but
    # recalls and answers worse.
    local_model: str = "qwen2.5-coder-1.5b"
    local_model_threads: int | None = None  # unset: one per core, less one kept for the API
    local_model_context: int = Field(default=8192, ge=512)
    # Longest answer the embedded model may write: a small model can loop, and on a CPU every token costs.
    local_model_max_tokens: int = Field(default=1024, ge=16)
    # Low: a small model strays at llama.cpp's default (0.8). Tool decisions always use 0.
    local_model_temperature: float = Field(default=0.2, ge=0, le=2)
    # How tools are called on the embedded model and OpenAI-compatible servers: `constrained` asks a
    # schema-constrained "which tool, if any" first (arguments valid by construction); `native` sends the tool
    # definitions as usual. `auto`: constrained on the embedded model, native elsewhere.
    tool_calling: Literal["auto", "native", "constrained"] = "auto"

    # --- agent ---------------------------------------------------------------------------------
    max_message_chars: int = Field(default=16_000, ge=1)
    max_tool_rounds: int = Field(default=5, ge=1, le=50)
    summary_after_turns: int = Field(default=20, ge=2)
    search_provider: Literal["duckduckgo", "searxng", "none"] = "duckduckgo"
    searxng_url: str | None = None
    cache_enabled: bool = False
    cache_ttl_seconds: int = Field(default=3600, ge=1)

    # --- runs and background jobs (runs/worker.py) --------------------------------------------------
    # `agentserver serve` also executes runs and jobs in-process; false: API only (run `agentserver worker`).
    run_worker_enabled: bool = True
    run_concurrency: int = Field(default=16, ge=1, le=1000)  # runs one worker process executes at once
    job_concurrency: int = Field(default=2, ge=1, le=100)  # background jobs (memory extraction, erasure sweeps)
    # Workers heartbeat their runs this often; a run whose worker missed two heartbeats is taken over.
    run_heartbeat_seconds: float = Field(default=5.0, ge=0.2, le=300)
    # Executions of one run before it fails (a takeover after a crash or a database outage is a new
    # attempt; a drain is not).
    run_max_attempts: int = Field(default=3, ge=1, le=10)
    # On shutdown, runs get this long to finish; the rest are handed back and resumed by another worker.
    run_drain_seconds: float = Field(default=20.0, ge=0)
    # How often idle workers look for work even without a notification (they are woken by NOTIFY).
    run_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    # How long a finished run's events can be replayed (Last-Event-ID); its outcome stays in the run.
    run_events_retention_seconds: int = Field(default=86_400, ge=60)
    # A new message while the session is answering: reject (409) | enqueue | interrupt | rollback.
    default_multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "reject"
    # Tools whose calls wait for a human decision (POST /api/v1/runs/{id}/resume) before they run.
    tools_requiring_approval: CommaList = []

    # --- assistants and MCP tools (agent/assistants.py, agent/mcp.py) --------------------------------------
    # The deployment's assistants and MCP servers (YAML, or TOML for *.toml); unset: the built-in `agent`
    # and `researcher`. Validated at start: a bad file stops start-up naming the file, assistant and field.
    assistants_file: Path | None = None
    # Tools users' own assistants may have; empty: the built-ins plus every configured MCP server's tools.
    user_assistant_tools: CommaList = []
    # An MCP tool call that takes longer is abandoned and the model is told it timed out.
    mcp_tool_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    # Characters of an MCP tool's result given to the model (the rest is cut, and the model told so).
    mcp_max_result_chars: int = Field(default=4000, ge=100, le=100_000)
    # How long an MCP server gets to start and list its tools; one that does not is left out (logged).
    mcp_start_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    # Compiled agent graphs kept per (assistant, version): users' assistants beyond this are rebuilt on use.
    assistant_graph_cache_size: int = Field(default=128, ge=1, le=10_000)

    # --- memory --------------------------------------------------------------------------------
    memory_enabled: bool = True
    embedding_provider: Literal["local", "openai"] = "local"
    memory_top_k: int = Field(default=5, ge=0, le=50)
    memory_max_chars: int = Field(default=2000, ge=0)
    # mem0 runs on a loop and thread pool of its own (memory/isolation.py): this many threads and connections.
    memory_threads: int = Field(default=4, ge=1, le=64)
    # A slow memory store must not stall a chat turn: past this, the turn goes on without memories.
    memory_search_timeout_seconds: float = Field(default=5.0, gt=0)

    # --- documents (documents/): uploads, ingestion, search_documents --------------------------------------
    documents_enabled: bool = True
    # Largest upload, counted while it streams (refused with 413 as soon as it passes, never buffered whole).
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # All of a user's stored files together; an upload past it is refused with 413 StorageQuotaExceeded.
    max_files_bytes_per_user: int = Field(default=500 * 1024 * 1024, ge=1024)
    # Where uploaded bytes live: `local` (AGENTSERVER_DATA_DIR/files/<user>/<file>). An S3-compatible store is
    # an implementation of documents/storage.py's FileStorage protocol (not shipped yet).
    file_storage: Literal["local"] = "local"
    # The embedder of document chunks (each has its own vector table; switching needs files re-ingested):
    # `use` (multilingual, Korean + English) or `minilm` (English). See bench/results/embeddings.md.
    documents_embedder: Literal["use", "minilm"] = "use"
    # Chunks are this many embedder tokens (MiniLM reads up to 256), consecutive chunks share the overlap.
    documents_chunk_tokens: int = Field(default=200, ge=32, le=256)
    documents_chunk_overlap_tokens: int = Field(default=40, ge=0, le=128)
    # A PDF longer than this is refused at ingestion (failed, with the reason).
    documents_max_pages: int = Field(default=1000, ge=1)
    # A file that makes more chunks than this is refused at ingestion (failed, with the reason): embedding
    # is ~25 ms a chunk on one core, and a user's jobs run one at a time.
    documents_max_chunks: int = Field(default=5000, ge=1)
    documents_search_top_k: int = Field(default=5, ge=1, le=20)

    # --- tracing (observability/tracing.py): off, with no exporter and no connection, unless an OTLP endpoint
    # or Langfuse keys are set. The other standard OTEL_* variables (OTEL_TRACES_SAMPLER, ..._ARG,
    # OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_TIMEOUT, ...) are read by the SDK from the environment.
    otel_exporter_otlp_endpoint: str | None = None  # base URL of an OTLP/HTTP collector; /v1/traces is appended
    otel_exporter_otlp_traces_endpoint: str | None = None  # the full traces URL, if it is not <base>/v1/traces
    otel_exporter_otlp_headers: SecretStr | None = None  # "key=value,key2=value2" (e.g. an Authorization header)
    otel_service_name: str = Field(default="agentserver", min_length=1, max_length=100)
    otel_sdk_disabled: bool = False  # the standard kill switch: no tracing whatever else is set
    # Langfuse (cloud or self-hosted) ingests OpenTelemetry: with both keys set, traces also go there.
    langfuse_public_key: str | None = None
    langfuse_secret_key: SecretStr | None = None
    langfuse_host: str = "https://cloud.langfuse.com"

    # --- usage, quotas and operators (usage/) ----------------------------------------------------------------
    # Accounts whose email is listed here are admins (GET /api/v1/admin/*), whatever their stored role.
    admin_emails: CommaList = []
    # Budgets per user and UTC day / month; 0 is unlimited. An admin overrides them per user (API or CLI).
    quota_daily_tokens: int = Field(default=0, ge=0)
    quota_monthly_tokens: int = Field(default=0, ge=0)
    quota_daily_cost_usd: Decimal = Field(default=Decimal("0"), ge=0, max_digits=14, decimal_places=6)
    quota_monthly_cost_usd: Decimal = Field(default=Decimal("0"), ge=0, max_digits=14, decimal_places=6)
    # The Prometheus gauge of the top spenders (by user id) of the day and month: how many, how often refreshed.
    usage_top_users: int = Field(default=10, ge=0, le=100)
    usage_top_users_refresh_seconds: float = Field(default=60.0, ge=1)

    _split = field_validator(
        "cors_origins",
        "trusted_hosts",
        "trusted_proxies",
        "fallback_models",
        "tools_requiring_approval",
        "user_assistant_tools",
        "admin_emails",
        mode="before",
    )(_split_commas)

    @field_validator("admin_emails", mode="after")
    @classmethod
    def _normalise_emails(cls, value: list[str]) -> list[str]:
        # Emails are stored trimmed and lower-cased (auth/schemas.py).
        return [email.strip().lower() for email in value]

    @model_validator(mode="after")
    def _production_guards(self) -> Settings:
        if self.environment is not Environment.production:
            return self
        problems = []
        if self.debug:
            problems.append("DEBUG must be false in production")
        secret = self.jwt_secret_key.get_secret_value()
        if secret == DEFAULT_JWT_SECRET or len(secret) < MIN_JWT_SECRET_LENGTH:
            problems.append(
                f"JWT_SECRET_KEY must be set to a random secret of at least {MIN_JWT_SECRET_LENGTH} "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        if not self.database_url:
            problems.append("DATABASE_URL must point at PostgreSQL with pgvector (no embedded database)")
        if self.password_hash_memory_kib < MIN_PRODUCTION_PASSWORD_HASH_MEMORY_KIB:
            problems.append(f"PASSWORD_HASH_MEMORY_KIB must be at least {MIN_PRODUCTION_PASSWORD_HASH_MEMORY_KIB}")
        if "*" in self.cors_origins:
            problems.append("CORS_ORIGINS must list origins explicitly, not '*'")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production

    @property
    def is_testing(self) -> bool:
        return self.environment is Environment.test

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "console"

    @property
    def tracing_configured(self) -> bool:
        """Whether spans are recorded and exported (else: no provider, no exporter, no network)."""
        if self.otel_sdk_disabled:
            return False
        return bool(
            self.otel_exporter_otlp_endpoint
            or self.otel_exporter_otlp_traces_endpoint
            or (self.langfuse_public_key and self.langfuse_secret_key)
        )

    @property
    def data_dir(self) -> Path:
        return self.agentserver_data_dir.expanduser().resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
