"""The service's limits, purposes and id patterns: one place, used by the client, the validators
and the emulator.

Sources: OpenAI's API reference (Files, Uploads, Batch, Fine-tuning) and the official SDK's types,
summarised in the project's reference notes. The emulator's deliberately lenient readings of the
size limits are derived below (``EMULATOR_*``) and nowhere else.
"""

from __future__ import annotations

import re

MB = 1000 * 1000
MiB = 1024 * 1024
GB = 1000 * MB

DEFAULT_CONN_ID = "openai_files_default"
CONN_TYPE = "openai_files"

# --- Files -------------------------------------------------------------------------------------
#: Purposes a client may upload with ``POST /files`` or ``POST /uploads``.
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: Purposes of files the platform itself creates; never accepted on upload.
SERVICE_PURPOSES = ("assistants_output", "batch_output", "fine-tune-results")
#: Every purpose a file can have (valid ``list_files(purpose=...)`` filters).
ALL_PURPOSES = UPLOAD_PURPOSES + SERVICE_PURPOSES
#: ``GET /files/{id}/content`` answers bytes only for these purposes; the others get HTTP 400
#: "Not allowed to download files of purpose: <purpose>".
DOWNLOADABLE_PURPOSES = ("batch", "vision", *SERVICE_PURPOSES)
#: Purposes whose content is JSONL the client and the emulator check line by line.
JSONL_PURPOSES = ("fine-tune", "batch")

FILE_MAX_MB = 512  # POST /files, per file
BATCH_FILE_MAX_MB = 200  # a batch input file
PART_MAX_MB = 64  # one Uploads API part
UPLOAD_MAX_GB = 8  # one Upload in all

# The client reads the per-file "MB" figures as MiB (as it always has) and the Upload total as
# decimal GB, the stricter reading of the two.
FILE_MAX_BYTES = FILE_MAX_MB * MiB
BATCH_FILE_MAX_BYTES = BATCH_FILE_MAX_MB * MiB
PART_MAX_BYTES = PART_MAX_MB * MiB
UPLOAD_MAX_BYTES = UPLOAD_MAX_GB * GB
#: The emulator's lenient readings: every documented size read in binary units (MiB, GiB), the
#: larger reading, so the emulator never refuses what the service accepts. The only deliberate
#: leniency in the limits, named here and listed in the Fidelity table (docs/fidelity.md).
EMULATOR_FILE_MAX_BYTES = FILE_MAX_MB * MiB
EMULATOR_BATCH_FILE_MAX_BYTES = BATCH_FILE_MAX_MB * MiB
EMULATOR_PART_MAX_BYTES = PART_MAX_MB * MiB
EMULATOR_UPLOAD_MAX_BYTES = UPLOAD_MAX_GB * 1024 * MiB

EXPIRES_MIN_SECONDS = 3600
EXPIRES_MAX_SECONDS = 30 * 24 * 3600  # 2,592,000
BATCH_DEFAULT_EXPIRY_SECONDS = 30 * 24 * 3600
UPLOAD_LIFETIME_SECONDS = 3600

LIST_LIMIT_MAX = 10_000

# --- Retries: what a later attempt or try may find of an earlier one ---------------------------
#: How much further back than a local "since" a lookup by ``created_at`` looks: the service stamps
#: ``created_at`` with its clock, the lookup's window start comes from this machine's (or the Airflow
#: scheduler's). NTP-synchronised hosts differ by well under a second; 300 s is the tolerance Kerberos
#: uses by default for the same question between hosts (MIT krb5 ``clockskew``), generous for a VM whose
#: clock drifted. It is kept at that rather than larger because the window of an upload matched by name,
#: size and purpose (Airflow without a task state store) should admit as few unrelated files as possible;
#: batches and jobs are matched by a task key, where the window only bounds how many pages are read.
CLOCK_SKEW_SECONDS = 300

# --- JSONL content -----------------------------------------------------------------------------
FINE_TUNE_MIN_EXAMPLES = 10
BATCH_MAX_LINES = 50_000
MAX_LINE_BYTES = 64 * MiB
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# --- Batches -----------------------------------------------------------------------------------
BATCH_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
BATCH_COMPLETION_WINDOWS = ("24h",)
METADATA_MAX_PAIRS = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512

# --- Fine-tuning -------------------------------------------------------------------------------
FINE_TUNING_METHODS = ("supervised", "dpo", "reinforcement")
FINE_TUNING_SUFFIX_MAX = 64
#: The day OpenAI stops creating new self-serve fine-tuning jobs (OpenAI deprecations, 2026-05-07).
OPENAI_FINE_TUNING_CUTOFF = "2027-01-06"

# --- Ids ---------------------------------------------------------------------------------------
#: What the client accepts as an id before putting it in a URL path (any service, any prefix).
SAFE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")
FILE_ID_RE = re.compile(r"^file-[A-Za-z0-9]{1,64}$")
UPLOAD_ID_RE = re.compile(r"^upload_[A-Za-z0-9]{1,64}$")
PART_ID_RE = re.compile(r"^part_[A-Za-z0-9]{1,64}$")
BATCH_ID_RE = re.compile(r"^batch_[A-Za-z0-9]{1,64}$")
FINE_TUNING_JOB_ID_RE = re.compile(r"^ftjob-[A-Za-z0-9]{1,64}$")
#: An operator argument that is a file id rather than a location (a path or URL has a dot or a slash):
#: wider than :data:`FILE_ID_RE` (the emulator's own ids), as another OpenAI-shaped service may add ``-``/``_``.
FILE_ID_ARGUMENT_RE = re.compile(r"^file-[A-Za-z0-9_-]{1,64}$")

# --- Uploads: MIME types checked per purpose ---------------------------------------------------
#: ``POST /uploads`` with purpose ``vision`` must declare an image type the vision models read
#: (OpenAI's vision guide: PNG, JPEG, WEBP, non-animated GIF).
VISION_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")

# --- Azure OpenAI --------------------------------------------------------------------------------
#: Values of the connection's ``flavor`` extra.
FLAVORS = ("openai", "azure")
#: The GA data-plane ``api-version`` of the Files/Batches/Fine-tuning REST reference (learn.microsoft.com).
AZURE_GA_API_VERSION = "2024-10-21"
#: Azure's ``POST /files`` is reported to fail above ~150 MB (microsoft/skills PR 276): larger files go
#: through the Uploads API from this size on.
AZURE_MULTIPART_THRESHOLD = 100 * MiB
#: Batch files per Azure resource when they carry no expiry (10,000 with one; learn.microsoft.com batch guide).
AZURE_BATCH_FILES_WITHOUT_EXPIRY_MAX = 500

# --- Vector stores -------------------------------------------------------------------------------
# Sources: openai-python's types (``types/vector_stores/*``, ``file_batch_create_params``,
# ``static_file_chunking_strategy``, ``vector_store_search_params``) and OpenAI's API reference.
VECTOR_STORE_ID_RE = re.compile(r"^vs_[A-Za-z0-9]{1,64}$")
VECTOR_STORE_FILE_BATCH_ID_RE = re.compile(r"^vsfb_[A-Za-z0-9]{1,64}$")
#: "The maximum batch size is 2000 files" (``file_batches.create``, ``file_ids`` and ``files``).
FILE_BATCH_MAX_FILES = 2000
#: Attach rate the service documents per organization (files per minute); the operator paces batches by it.
ATTACH_FILES_PER_MINUTE = 2000
#: ``attributes``: 16 pairs, keys <= 64 characters, values strings <= 512 characters, booleans or numbers.
ATTRIBUTES_MAX_PAIRS = 16
ATTRIBUTE_KEY_MAX = 64
ATTRIBUTE_VALUE_MAX = 512
#: Static chunking: ``max_chunk_size_tokens`` 100..4096 (default 800); ``chunk_overlap_tokens`` default 400,
#: at most half of the chunk size.
CHUNK_SIZE_MIN, CHUNK_SIZE_MAX = 100, 4096
CHUNK_SIZE_DEFAULT, CHUNK_OVERLAP_DEFAULT = 800, 400
#: ``expires_after`` of a vector store: anchor ``last_active_at`` and a number of days (1..365, OpenAPI document).
VECTOR_STORE_EXPIRY_ANCHORS = ("last_active_at",)
VECTOR_STORE_EXPIRY_DAYS_MIN, VECTOR_STORE_EXPIRY_DAYS_MAX = 1, 365
#: List pages of vector stores, their files and batch files: ``limit`` 1..100, default 20.
VECTOR_STORE_LIST_LIMIT_DEFAULT, VECTOR_STORE_LIST_LIMIT_MAX = 20, 100
#: ``search``: ``max_num_results`` 1..50 (default 10).
SEARCH_MAX_RESULTS_MIN, SEARCH_MAX_RESULTS_MAX, SEARCH_MAX_RESULTS_DEFAULT = 1, 50, 10
#: Comparison and compound filter operators of ``search`` (``ComparisonFilter`` / ``CompoundFilter``).
FILTER_COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
FILTER_COMPOUNDS = ("and", "or")
#: ``name`` of a vector store: no documented bound; the emulator and the client take up to this many characters.
VECTOR_STORE_NAME_MAX = 256
