"""Application configuration: a dataclass with defaults, overridable by environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.limits import Limits

APP_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


def _env_int(name: str, default: int) -> int:
    """An integer environment variable; ``default`` when unset or not a whole number."""
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


def _env_float(name: str, default: float) -> float:
    """A positive number from the environment; ``default`` when unset or not a positive number."""
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


def _default_data_dir(persistent: Path = Path("/data")) -> Path:
    """The app's data folder; on a Hugging Face Space with persistent storage (mounted at /data) it goes there."""
    if os.environ.get("SPACE_ID") and persistent.is_dir() and os.access(persistent, os.W_OK):
        return persistent / "lm-workbench"
    return APP_ROOT / "data"


@dataclass(frozen=True)
class BatchingConfig:
    """Batched decoding across generation requests (:mod:`pipelines.generation.batcher`)."""

    enabled: bool = True  # LMW_BATCHING=0: every generation runs alone, through ``model.generate``
    window_ms: float = 5.0  # how long a new batch waits for more requests (LMW_BATCH_WINDOW_MS)
    max_batch: int = 16  # sequences one decoding step carries at most (LMW_BATCH_MAX)
    max_cache_mb: int = 1024  # a request joins a running batch only while its padded KV cache fits (LMW_BATCH_CACHE_MB)

    @classmethod
    def from_env(cls) -> BatchingConfig:
        return cls(
            enabled=os.environ.get("LMW_BATCHING", "1").strip() != "0",
            window_ms=_env_float("LMW_BATCH_WINDOW_MS", cls.window_ms),
            max_batch=max(1, _env_int("LMW_BATCH_MAX", cls.max_batch)),
            max_cache_mb=max(1, _env_int("LMW_BATCH_CACHE_MB", cls.max_cache_mb)),
        )


@dataclass
class AppConfig:
    """Paths, limits and device settings for one app instance."""

    data_dir: Path = field(default_factory=_default_data_dir)
    cache_dir: Path | None = None  # de-quantised embedded models; default: data_dir / "cache"
    runs_dir: Path | None = None  # fine-tuning runs; default: data_dir / "runs"
    models_dir: Path | None = None  # user-provided local model folders; default: data_dir / "models"
    extra_model_roots: list[Path] = field(default_factory=list)
    device: str = "auto"  # auto, cuda, mps, cpu
    memory_budget_mb: int = 6144  # LRU eviction above this many MB of loaded weights
    allow_pickle_weights: bool = False  # .bin/.pt weights need explicit opt-in
    trust_remote_code: bool = False
    max_input_chars: int = 20_000
    max_upload_mb: int = 50
    max_rows: int = 50_000
    chat_model: str = "smollm2-135m-instruct"  # the Generate tab's default model (LMW_CHAT_MODEL)
    gen_threads: int = 0  # 0: tuned from measured decoding steps; N pins the compute thread's torch threads
    queue_size: int = 64  # requests waiting in Gradio's queue before new ones are refused
    log_level: str = "INFO"
    bertviz_js: str = "inline"  # "inline": bertviz views carry their scripts; "served": loaded from the app
    username: str = ""  # with password: the app asks for this login
    password: str = field(default="", repr=False)
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    space_id: str = ""  # set on a Hugging Face Space (SPACE_ID)
    api_key: str = field(default="", repr=False)  # bearer key the /v1 OpenAI-compatible API requires (LMW_API_KEY)
    backends: str = field(default="", repr=False)  # remote endpoints "name=url[|key];..." (LMW_BACKENDS): may hold keys
    remote_connect_timeout_s: float = 5.0
    remote_read_timeout_s: float = 60.0
    remote_concurrency: int = 4  # requests a CSV batch keeps in flight on a remote endpoint (1..64)
    warmup: bool = True  # prepare the embedded models in the background after start-up (LMW_WARMUP=0: off)
    decode_batching: BatchingConfig = field(default_factory=BatchingConfig)  # concurrent generations share steps
    users: str = field(default="", repr=False)  # LMW_USERS: logins "name:hash[:admin],..." or a file (pipelines.users)
    api_keys: str = field(default="", repr=False)  # LMW_API_KEYS: "key:user,..." or a file; never logged
    hf_oauth: bool = False  # LMW_HF_OAUTH=1: users sign in with Hugging Face (a Space with hf_oauth: true)
    admins: str = ""  # LMW_ADMINS: "name,name2" are admins (Hugging Face usernames with LMW_HF_OAUTH)
    result_cache_mb: int = 384  # large per-session results (attention weights) kept server-side (LMW_RESULT_CACHE_MB)
    result_idle_s: float = 900.0  # a kept result unused this long is dropped (recomputed on the next use)
    microbatch_window_ms: float = 5.0  # how long a batch collects concurrent requests (LMW_MICROBATCH_WINDOW_MS)
    microbatch_max: int = 8  # requests one micro-batch takes at most (LMW_MICROBATCH_MAX)
    microbatch_max_mb: int = 64  # attention weights one micro-batch may produce; larger requests run alone

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.cache_dir = Path(self.cache_dir) if self.cache_dir else self.data_dir / "cache"
        self.runs_dir = Path(self.runs_dir) if self.runs_dir else self.data_dir / "runs"
        self.models_dir = Path(self.models_dir) if self.models_dir else self.data_dir / "models"

    @property
    def model_roots(self) -> list[Path]:
        """Folders under which local model paths are allowed."""
        return [self.models_dir, self.runs_dir, *self.extra_model_roots]

    @property
    def limits(self) -> Limits:
        """The caps every tab and the API apply (see :mod:`pipelines.limits`)."""
        return Limits(max_input_chars=self.max_input_chars, max_upload_mb=self.max_upload_mb, max_rows=self.max_rows)

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.cache_dir, self.runs_dir, self.models_dir):
            path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls) -> AppConfig:
        """Build a config from ``LMW_*`` environment variables."""
        data_dir = _env_path("LMW_DATA_DIR", _default_data_dir())
        roots = [Path(p).expanduser() for p in os.environ.get("LMW_MODEL_ROOTS", "").split(os.pathsep) if p]
        return cls(
            data_dir=data_dir,
            cache_dir=_env_path("LMW_CACHE_DIR", data_dir / "cache"),
            runs_dir=_env_path("LMW_RUNS_DIR", data_dir / "runs"),
            models_dir=_env_path("LMW_MODELS_DIR", data_dir / "models"),
            extra_model_roots=roots,
            device=os.environ.get("LMW_DEVICE", "auto"),
            memory_budget_mb=int(os.environ.get("LMW_MEMORY_BUDGET_MB", "6144")),
            allow_pickle_weights=os.environ.get("LMW_ALLOW_PICKLE", "0") == "1",
            chat_model=os.environ.get("LMW_CHAT_MODEL", "").strip() or cls.chat_model,
            gen_threads=_env_int("LMW_GEN_THREADS", 0),
            queue_size=_env_int("LMW_QUEUE_SIZE", 64),
            log_level=os.environ.get("LMW_LOG_LEVEL", "INFO").upper(),
            bertviz_js="served" if os.environ.get("LMW_BERTVIZ_JS") == "served" else "inline",
            username=os.environ.get("LMW_USERNAME", ""),
            password=os.environ.get("LMW_PASSWORD", ""),
            server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            server_port=_env_int("GRADIO_SERVER_PORT", 0) or _env_int("PORT", 7860),
            space_id=os.environ.get("SPACE_ID", ""),
            warmup=os.environ.get("LMW_WARMUP", "1").strip() != "0",
            api_key=os.environ.get("LMW_API_KEY", "").strip(),
            backends=os.environ.get("LMW_BACKENDS", "").strip(),
            remote_connect_timeout_s=_env_float("LMW_REMOTE_CONNECT_TIMEOUT", 5.0),
            remote_read_timeout_s=_env_float("LMW_REMOTE_READ_TIMEOUT", 60.0),
            remote_concurrency=max(1, min(64, _env_int("LMW_REMOTE_CONCURRENCY", 4))),
            decode_batching=BatchingConfig.from_env(),
            users=os.environ.get("LMW_USERS", "").strip(),
            api_keys=os.environ.get("LMW_API_KEYS", "").strip(),
            hf_oauth=os.environ.get("LMW_HF_OAUTH", "").strip().lower() in ("1", "true", "yes", "on"),
            admins=os.environ.get("LMW_ADMINS", "").strip(),
            result_cache_mb=_env_int("LMW_RESULT_CACHE_MB", 384),
            microbatch_window_ms=_env_float("LMW_MICROBATCH_WINDOW_MS", 5.0),
            microbatch_max=max(1, _env_int("LMW_MICROBATCH_MAX", 8)),
        )
