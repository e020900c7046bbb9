"""One typed place for configuration.

Every knob is read from an environment variable (prefix ``PUSH_``) with a default that runs the
embedded demo. The database URL comes, in order, from ``PUSH_DATABASE_URL``, from the Airflow
connection ``push_db`` given as ``AIRFLOW_CONN_PUSH_DB``, and finally from the embedded
PostgreSQL cluster that ``devenv.localdb`` starts under ``.local/``. The Spark master URL
comes likewise from ``PUSH_SPARK_MASTER``, then the Airflow connection ``spark_default``
(``AIRFLOW_CONN_SPARK_DEFAULT``), then ``local[2]``.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: str) -> str:
    return os.environ.get(f"PUSH_{name}", default)


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


def _env_map(name: str, default: str, cast):
    """Parse ``key:value,key:value`` (e.g. per-channel caps) into a dict."""
    pairs = [item.split(":", 1) for item in _env(name, default).split(",") if item.strip()]
    try:
        return {key.strip(): cast(value) for key, value in pairs}
    except ValueError as error:
        raise ValueError(f"PUSH_{name} must look like 'push:3,email:1', got {_env(name, default)!r}") from error


def default_local_dir() -> Path:
    return Path(_env("LOCAL_DIR", str(PROJECT_ROOT / ".local")))


def to_sqlalchemy_url(url: str) -> str:
    """Normalise ``postgres://`` / ``postgresql://`` URLs (Airflow style) to the psycopg2 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def resolve_database_url() -> str:
    """Return the pipeline database URL, or raise with a message saying how to provide one."""
    explicit = os.environ.get("PUSH_DATABASE_URL") or os.environ.get("AIRFLOW_CONN_PUSH_DB")
    if explicit:
        return to_sqlalchemy_url(explicit)
    url = _running_embedded_url()
    if url is None:
        raise RuntimeError(
            "No database configured: set PUSH_DATABASE_URL (or the Airflow connection "
            "AIRFLOW_CONN_PUSH_DB), or start the embedded one with "
            "'python -m devenv.localdb start' (make db; make demo does this)."
        )
    return url


def embedded_database_state() -> Path:
    """Where the embedded cluster of the local environment (``devenv.localdb``) records its port
    and URL while it runs. A file, not an import: the product knows nothing of the dev tools."""
    return default_local_dir() / "pg" / "state.json"


def _running_embedded_url() -> str | None:
    try:
        state = json.loads(embedded_database_state().read_text())
        with socket.create_connection(("127.0.0.1", int(state["port"])), timeout=1):
            return state["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def spark_master_from_connection(value: str) -> str:
    """The Spark master URL an Airflow ``spark`` connection (URI or JSON form) stands for.

    Airflow's Spark provider keeps the master in the connection's host, with its scheme when it
    has one (``spark://host``, ``k8s://https://host``, ``yarn``, ``local[*]``), and the port apart.
    In the URI form, ``spark://host:7077`` is the standalone master ``spark://host:7077``; a host
    with a scheme is given percent-encoded (``spark://k8s%3A%2F%2Fhttps%3A%2F%2Fapi:6443``).
    """
    value = value.strip()
    if value.startswith("{"):
        data = json.loads(value)
        host, port = str(data.get("host") or "").strip(), data.get("port")
    else:
        netloc = urlsplit(value).netloc.rsplit("@", 1)[-1]
        encoded_host, _, port = netloc.partition(":")
        host = unquote(encoded_host)
    if not host:
        raise ValueError(f"the Spark connection names no master host: {value!r}")
    if "://" in host or host == "yarn" or host.startswith("local"):
        return f"{host}:{port}" if port else host
    return f"spark://{host}:{port or 7077}"


def resolve_spark_master() -> str:
    """``PUSH_SPARK_MASTER``, else the Airflow connection ``spark_default`` from the environment, else local."""
    explicit = os.environ.get("PUSH_SPARK_MASTER")
    if explicit:
        return explicit
    connection = os.environ.get("AIRFLOW_CONN_SPARK_DEFAULT")
    if connection:
        return spark_master_from_connection(connection)
    return "local[2]"


@dataclass(frozen=True)
class Settings:
    """Pipeline settings. Build with :meth:`Settings.from_env`; override fields in tests."""

    local_dir: Path = field(default_factory=default_local_dir)
    landing_dir: Path = field(default_factory=lambda: Path(_env("LANDING_DIR", str(default_local_dir() / "landing"))))
    # Where the behaviour-event files are read from, when not ``<landing_dir>/events``: any URL
    # Spark's Hadoop file systems can list (file://, s3a://, gs://, abfs://, hdfs://).
    events_url: str = field(default_factory=lambda: _env("EVENTS_URL", ""))
    lake_dir: Path = field(default_factory=lambda: Path(_env("LAKE_DIR", str(default_local_dir() / "lake"))))
    outbox_dir: Path = field(default_factory=lambda: Path(_env("OUTBOX_DIR", str(default_local_dir() / "outbox"))))
    spark_master: str = field(default_factory=resolve_spark_master)
    spark_driver_memory: str = field(default_factory=lambda: _env("SPARK_DRIVER_MEMORY", "2g"))
    # Cleaning: a run fails when more than this share of its rows is quarantined.
    max_bad_row_share: float = field(default_factory=lambda: _env_float("MAX_BAD_ROW_SHARE", 0.01))
    # Longest id (and device name) a clean event may carry, and longest free text (a search query).
    max_id_length: int = field(default_factory=lambda: _env_int("MAX_ID_LENGTH", 128))
    max_text_length: int = field(default_factory=lambda: _env_int("MAX_TEXT_LENGTH", 2048))
    # How far back (landing hours) a re-delivered event_id is recognised as a duplicate.
    dedupe_hours: int = field(default_factory=lambda: _env_int("DEDUPE_HOURS", 48))
    # Events per user per minute above which a user's events are treated as a bot's.
    bot_events_per_minute: int = field(default_factory=lambda: _env_int("BOT_EVENTS_PER_MINUTE", 30))
    # Events naming an item the catalogue does not know: "keep" them or "quarantine" them
    # (reason ``unknown_item``). Kept ones show up as "(unknown item)" in the daily summary.
    unknown_items: str = field(default_factory=lambda: _env("UNKNOWN_ITEMS", "keep"))
    # Profiles and ratings.
    lookback_days: int = field(default_factory=lambda: _env_int("LOOKBACK_DAYS", 28))
    half_life_days: float = field(default_factory=lambda: _env_float("HALF_LIFE_DAYS", 7.0))
    kmeans_k_min: int = field(default_factory=lambda: _env_int("KMEANS_K_MIN", 2))
    kmeans_k_max: int = field(default_factory=lambda: _env_int("KMEANS_K_MAX", 6))
    # Recommendations.
    top_n: int = field(default_factory=lambda: _env_int("TOP_N", 10))
    eval_k: int = field(default_factory=lambda: _env_int("EVAL_K", 10))
    svd_factors: int = field(default_factory=lambda: _env_int("SVD_FACTORS", 32))
    svd_epochs: int = field(default_factory=lambda: _env_int("SVD_EPOCHS", 30))
    svd_lr: float = field(default_factory=lambda: _env_float("SVD_LR", 0.01))
    svd_reg: float = field(default_factory=lambda: _env_float("SVD_REG", 0.05))
    svd_negative_ratio: float = field(default_factory=lambda: _env_float("SVD_NEGATIVE_RATIO", 1.0))
    svd_popularity_exponent: float = field(default_factory=lambda: _env_float("SVD_POPULARITY_EXPONENT", 0.0))
    # Model families the daily run tunes and chooses between on validation (jobs.recs.zoo):
    # svd (or als, see PUSH_RECS_TRAINER), ease, item_knn; "blend" adds the blend of the best two.
    recs_models: tuple[str, ...] = field(
        default_factory=lambda: tuple(_env("RECS_MODELS", "svd,ease,item_knn,blend").replace(" ", "").split(","))
    )
    ease_lambda_scale: float = field(default_factory=lambda: _env_float("EASE_LAMBDA_SCALE", 8.0))
    # EASE holds items x items doubles (three copies at the peak): above this, item_knn only.
    ease_max_items: int = field(default_factory=lambda: _env_int("EASE_MAX_ITEMS", 10_000))
    knn_neighbours: int = field(default_factory=lambda: _env_int("KNN_NEIGHBOURS", 100))
    # Tuning runs on a seeded sample of at most this many training users.
    tuning_users: int = field(default_factory=lambda: _env_int("TUNING_USERS", 20_000))
    seed: int = field(default_factory=lambda: _env_int("SEED", 42))
    max_per_category: int = field(default_factory=lambda: _env_int("MAX_PER_CATEGORY", 4))
    # Places in a user's list that items with no interactions yet may take (0: none).
    new_item_slots: int = field(default_factory=lambda: _env_int("NEW_ITEM_SLOTS", 1))
    # A new model is promoted unless its NDCG@k is worse than the live model's by more than this.
    promotion_tolerance: float = field(default_factory=lambda: _env_float("PROMOTION_TOLERANCE", 0.05))
    # Factor model of the zoo: "svd" (Surprise, one machine) or "als" (Spark MLlib implicit ALS, scales out).
    recs_trainer: str = field(default_factory=lambda: _env("RECS_TRAINER", "svd"))
    als_rank: int = field(default_factory=lambda: _env_int("ALS_RANK", 32))
    als_iterations: int = field(default_factory=lambda: _env_int("ALS_ITERATIONS", 10))
    als_reg: float = field(default_factory=lambda: _env_float("ALS_REG", 0.05))
    als_alpha: float = field(default_factory=lambda: _env_float("ALS_ALPHA", 10.0))
    # Hyper-parameters: "ndcg" tunes every family by NDCG@k on a validation split cut from the
    # training part (jobs.recs.zoo); "config" uses PUSH_SVD_* etc. as given; "grid" picks the SVD's
    # with Surprise's GridSearchCV (seeded folds, RMSE) over PUSH_SVD_GRID ("name:v1|v2,...").
    # Either way the family is chosen by validation NDCG@k.
    svd_tuning: str = field(default_factory=lambda: _env("SVD_TUNING", "ndcg"))
    svd_grid: dict[str, list[float]] = field(
        default_factory=lambda: _env_map(
            "SVD_GRID",
            "n_factors:16|32,lr_all:0.005|0.01,reg_all:0.02|0.05|0.1",
            lambda v: [float(x) for x in v.split("|")],
        )
    )
    svd_grid_folds: int = field(default_factory=lambda: _env_int("SVD_GRID_FOLDS", 3))
    # Notification policy (see docs/notification-policy.md): caps count non-transactional
    # messages per user in rolling windows; a fatigued user gets the lower fatigue caps.
    daily_cap: int = field(default_factory=lambda: _env_int("DAILY_CAP", 1))
    weekly_cap: int = field(default_factory=lambda: _env_int("WEEKLY_CAP", 5))
    min_gap_minutes: int = field(default_factory=lambda: _env_int("MIN_GAP_MINUTES", 60))
    channel_daily_caps: dict[str, int] = field(
        default_factory=lambda: _env_map("CHANNEL_DAILY_CAPS", "push:3,email:1,sms:1,webhook:3", int)
    )
    campaign_cap: int = field(default_factory=lambda: _env_int("CAMPAIGN_CAP", 1))
    campaign_cap_days: int = field(default_factory=lambda: _env_int("CAMPAIGN_CAP_DAYS", 7))
    transactional_counts: bool = field(default_factory=lambda: _env("TRANSACTIONAL_COUNTS", "false") == "true")
    # Planner connections deciding disjoint user ranges side by side (each a database core).
    notify_workers: int = field(default_factory=lambda: _env_int("NOTIFY_WORKERS", min(os.cpu_count() or 1, 4)))
    quiet_hours_start: str = field(default_factory=lambda: _env("QUIET_HOURS_START", "22:00"))
    quiet_hours_end: str = field(default_factory=lambda: _env("QUIET_HOURS_END", "08:00"))
    message_expiry_hours: int = field(default_factory=lambda: _env_int("MESSAGE_EXPIRY_HOURS", 24))
    holdout_percent: float = field(default_factory=lambda: _env_float("HOLDOUT_PERCENT", 5.0))
    holdout_salt: str = field(default_factory=lambda: _env("HOLDOUT_SALT", "push-holdout-v1"))
    # Policy arms: percent of users (by a keyed hash) planned with one part of the policy
    # replaced, e.g. random_hour:15,fixed_cap:15,popularity:15; the rest get the full policy.
    policy_arms: dict[str, float] = field(default_factory=lambda: _env_map("POLICY_ARMS", "", float))
    policy_arms_salt: str = field(default_factory=lambda: _env("POLICY_ARMS_SALT", "push-arms-v1"))
    # Exploration for off-policy evaluation: percent of (user, local day) pairs whose send hour
    # is drawn at random (by a keyed hash) instead of the estimate; each decision logs its propensity.
    explore_percent: float = field(default_factory=lambda: _env_float("EXPLORE_PERCENT", 0.0))
    explore_salt: str = field(default_factory=lambda: _env("EXPLORE_SALT", "push-explore-v1"))
    # Uplift targeting (docs/notification-policy.md, "Uplift targeting"): each day, per cell of
    # users (recent buyers or not), the measured effect of messaging on conversion (treatment
    # minus control group) sets the share of the cell's user-days that may be messaged: the
    # chance that the effect exceeds UPLIFT_MIN_EFFECT, never below UPLIFT_FLOOR. A cell with
    # fewer than UPLIFT_MIN_UNITS user-days in either group is not gated.
    uplift_targeting: bool = field(default_factory=lambda: _env("UPLIFT_TARGETING", "true") == "true")
    uplift_min_effect: float = field(default_factory=lambda: _env_float("UPLIFT_MIN_EFFECT", 0.005))
    uplift_floor: float = field(default_factory=lambda: _env_float("UPLIFT_FLOOR", 0.2))
    uplift_min_units: int = field(default_factory=lambda: _env_int("UPLIFT_MIN_UNITS", 100))
    uplift_window_days: int = field(default_factory=lambda: _env_int("UPLIFT_WINDOW_DAYS", 28))
    uplift_salt: str = field(default_factory=lambda: _env("UPLIFT_SALT", "push-uplift-v1"))
    # Campaign variants: "fixed" assigns users by the variants' weights; "thompson" shifts each
    # day's users toward the variant most likely to be best on VARIANT_OBJECTIVE (converted or
    # clicked), each variant keeping at least VARIANT_MIN_SHARE of them.
    variant_allocation: str = field(default_factory=lambda: _env("VARIANT_ALLOCATION", "fixed"))
    variant_objective: str = field(default_factory=lambda: _env("VARIANT_OBJECTIVE", "converted"))
    variant_min_share: float = field(default_factory=lambda: _env_float("VARIANT_MIN_SHARE", 0.1))
    # Adaptive frequency: after this many ignored messages in a row the fatigue caps apply.
    fatigue_after: int = field(default_factory=lambda: _env_int("FATIGUE_AFTER", 3))
    fatigue_daily_cap: int = field(default_factory=lambda: _env_int("FATIGUE_DAILY_CAP", 1))
    fatigue_weekly_cap: int = field(default_factory=lambda: _env_int("FATIGUE_WEEKLY_CAP", 1))
    # Feedback and send-time optimisation.
    attribution_hours: int = field(default_factory=lambda: _env_int("ATTRIBUTION_HOURS", 24))
    sto_user_prior_strength: float = field(default_factory=lambda: _env_float("STO_USER_PRIOR_STRENGTH", 10.0))
    sto_segment_prior_strength: float = field(default_factory=lambda: _env_float("STO_SEGMENT_PRIOR_STRENGTH", 50.0))
    # Triggers.
    cart_abandonment_minutes: int = field(default_factory=lambda: _env_int("CART_ABANDONMENT_MINUTES", 30))
    trigger_expiry_hours: int = field(default_factory=lambda: _env_int("TRIGGER_EXPIRY_HOURS", 24))
    price_drop_min_percent: float = field(default_factory=lambda: _env_float("PRICE_DROP_MIN_PERCENT", 10.0))
    browse_intent_views: int = field(default_factory=lambda: _env_int("BROWSE_INTENT_VIEWS", 5))
    browse_intent_minutes: int = field(default_factory=lambda: _env_int("BROWSE_INTENT_MINUTES", 30))
    # Item triggers reach users who viewed or carted the item within this many days.
    item_trigger_interest_days: int = field(default_factory=lambda: _env_int("ITEM_TRIGGER_INTEREST_DAYS", 14))
    # Channels: empty URLs mean the file sink (demo). SMTP URL: smtp://user:pass@host:port?starttls=1&from=a@b
    smtp_url: str = field(default_factory=lambda: _env("SMTP_URL", ""))
    # Operators e-mailed when a DAG task fails (comma-separated; needs SMTP_URL).
    alert_emails: list[str] = field(
        default_factory=lambda: [a.strip() for a in _env("ALERT_EMAILS", "").split(",") if a.strip()]
    )
    push_gateway_url: str = field(default_factory=lambda: _env("PUSH_GATEWAY_URL", ""))
    # Firebase Cloud Messaging for users whose push_platform is fcm (jobs/notify/fcm.py): the
    # service-account key file (a secret: keep it out of the repository and the database).
    fcm_service_account: str = field(default_factory=lambda: _env("FCM_SERVICE_ACCOUNT", ""))
    fcm_endpoint: str = field(default_factory=lambda: _env("FCM_ENDPOINT", "https://fcm.googleapis.com"))
    # Web Push for users whose push_platform is webpush (jobs/notify/webpush.py): the VAPID
    # private key file (PEM, a secret) and the contact the push services may use.
    webpush_vapid_key: str = field(default_factory=lambda: _env("WEBPUSH_VAPID_KEY", ""))
    webpush_subject: str = field(default_factory=lambda: _env("WEBPUSH_SUBJECT", ""))
    # APNs for users whose push_platform is apns (jobs/notify/apns.py): the .p8 signing key
    # (a secret), its key id, the team id and the app's bundle id.
    apns_key: str = field(default_factory=lambda: _env("APNS_KEY", ""))
    apns_key_id: str = field(default_factory=lambda: _env("APNS_KEY_ID", ""))
    apns_team_id: str = field(default_factory=lambda: _env("APNS_TEAM_ID", ""))
    apns_topic: str = field(default_factory=lambda: _env("APNS_TOPIC", ""))
    apns_endpoint: str = field(default_factory=lambda: _env("APNS_ENDPOINT", "https://api.push.apple.com"))
    # Push messages about an item carry a deep link and an image built from these patterns
    # ("{item_id}" is replaced), e.g. shop://item/{item_id}; empty: none.
    push_deep_link: str = field(default_factory=lambda: _env("DEEP_LINK", ""))
    push_image_url: str = field(default_factory=lambda: _env("IMAGE_URL", ""))
    sms_gateway_url: str = field(default_factory=lambda: _env("SMS_GATEWAY_URL", ""))
    gateway_secret: str = field(default_factory=lambda: _env("GATEWAY_SECRET", ""))
    gateway_timeout_seconds: float = field(default_factory=lambda: _env_float("GATEWAY_TIMEOUT_SECONDS", 10.0))
    channel_rate_limits: dict[str, float] = field(
        default_factory=lambda: _env_map("CHANNEL_RATE_LIMITS", "push:200,email:50,sms:20,webhook:50", float)
    )
    relay_max_attempts: int = field(default_factory=lambda: _env_int("RELAY_MAX_ATTEMPTS", 5))
    retry_base_seconds: float = field(default_factory=lambda: _env_float("RETRY_BASE_SECONDS", 2.0))
    retry_max_seconds: float = field(default_factory=lambda: _env_float("RETRY_MAX_SECONDS", 300.0))
    # Privacy: the HMAC key of pseudonymous user ids and of the erasure suppression list. Keep it
    # secret and stable (a new key makes erased users unrecognisable); the default is for demos.
    pseudonym_key: str = field(default_factory=lambda: _env("PSEUDONYM_KEY", "demo-pseudonym-key-change-me"))

    @classmethod
    def from_env(cls) -> Settings:
        return cls()

    @property
    def database_url(self) -> str:
        return resolve_database_url()

    @property
    def clean_dir(self) -> Path:
        return self.lake_dir / "clean" / "events"

    @property
    def models_dir(self) -> Path:
        return self.lake_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.local_dir / "reports"
