"""``python -m airflow_openai_files.emulator``: serve the emulated API until SIGINT or SIGTERM.

Prints ``OpenAI Files emulator listening on http://HOST:PORT/v1`` (``.../openai/v1`` with
``--flavor azure``) on stdout once it accepts connections (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_openai_files.emulator import require_server_stack


def _day(value: str) -> str:
    """A ``YYYY-MM-DD`` flag value, refused by argparse (exit 2, usage) when it is not one."""
    from airflow_openai_files.emulator.core.config import fine_tuning_cutoff_ts

    try:
        fine_tuning_cutoff_ts(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


DESCRIPTION = (
    "A local emulator of the OpenAI API's Files, Uploads, Batch, fine-tuning jobs and vector stores endpoints"
    " (and their Azure OpenAI routes with --flavor azure), for tests and demos of the Airflow provider."
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from airflow_openai_files.emulator.core.config import EmulatorConfig

    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(prog="python -m airflow_openai_files.emulator", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port (default 8089; 0 picks a free one)")
    parser.add_argument(
        "--data-dir", default=None, help="where files and metadata persist (default: a temporary directory)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=None,
        help="accepted API key (repeatable); without it any non-empty key is accepted",
    )
    parser.add_argument(
        "--processing-delay",
        type=float,
        default=0.0,
        help=f"seconds a new file stays 'uploaded' before it is 'processed' (default {defaults.processing_delay:g})",
    )
    parser.add_argument(
        "--flavor",
        choices=["openai", "azure"],
        default="openai",
        help="'azure' plays Azure OpenAI: /openai/...?api-version= and /openai/v1/... routes, api-key or Entra"
        " ID bearer auth, file statuses pending/running/processed, 201 + Location on upload (default openai)",
    )
    parser.add_argument(
        "--api-version",
        action="append",
        default=None,
        help="Azure: an api-version the /openai/... routes accept (repeatable; default: the GA and recent"
        " preview versions)",
    )
    parser.add_argument(
        "--ad-token",
        action="append",
        default=None,
        help="Azure: an accepted Entra ID bearer token (repeatable); without it any non-empty token is accepted",
    )
    parser.add_argument(
        "--file-status-errors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="report content problems of fine-tune and batch files on the file (status 'error' with"
        " status_details), as Azure OpenAI does; default: on with --flavor azure, else off (like OpenAI,"
        " files are always 'processed')",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="'info' or 'debug' also logs one line per request (default warning)",
    )
    # default=None: the Emulator's own defaults apply (shown in the help, read from EmulatorConfig).
    parser.add_argument(
        "--fine-tuning-validate-seconds",
        type=float,
        default=None,
        help=f"seconds a job spends in 'validating_files' (default {defaults.fine_tuning_validate_seconds:g})",
    )
    parser.add_argument(
        "--fine-tuning-queue-seconds",
        type=float,
        default=None,
        help=f"seconds a job spends 'queued' (default {defaults.fine_tuning_queue_seconds:g})",
    )
    parser.add_argument(
        "--fine-tuning-train-seconds",
        type=float,
        default=None,
        help="seconds a job spends 'running', emitting its step metrics"
        f" (default {defaults.fine_tuning_train_seconds:g})",
    )
    parser.add_argument(
        "--fine-tuning-available-until",
        default=None,
        type=_day,
        metavar="YYYY-MM-DD",
        help="refuse new fine-tuning jobs from this day on (emulator clock), as OpenAI does after its"
        " self-serve cutoff (OpenAI: 2027-01-06); default: never",
    )
    parser.add_argument(
        "--organization-name",
        default=None,
        help=f"organisation in fine-tuned model names (default {defaults.organization_name})",
    )
    parser.add_argument("--max-file-bytes", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-part-bytes", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-batch-bytes", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sync-check-bytes", type=int, default=None, help=argparse.SUPPRESS)
    batches = parser.add_argument_group("batches", "how long each batch state lasts on the emulator's clock")
    for state in ("validating", "in-progress", "finalizing", "cancelling"):
        default = getattr(defaults, f"batch_{state.replace('-', '_')}_seconds")
        batches.add_argument(
            f"--batch-{state}-seconds", type=float, default=None, help=f"seconds in '{state}' (default {default:g})"
        )
    batches.add_argument(
        "--batch-seconds-per-request",
        type=float,
        default=None,
        help="seconds 'in_progress' lasts per request, added to --batch-in-progress-seconds"
        f" (default {defaults.batch_seconds_per_request:g})",
    )
    batches.add_argument(
        "--enqueued-token-limit",
        type=int,
        default=None,
        help="fail a batch with 'token_limit_exceeded' when the tokens enqueued for its model would pass this"
        " (default: no limit)",
    )
    stores = parser.add_argument_group("vector stores")
    stores.add_argument(
        "--vector-store-file-seconds",
        type=float,
        default=None,
        help="seconds a file attached to a vector store stays 'in_progress' (default 0.1)",
    )
    stores.add_argument(
        "--vector-store-attach-per-minute",
        type=int,
        default=None,
        help="answer 429 past this many files attached per minute (default: no limit)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require_server_stack()
    except ImportError as exc:
        print(exc, file=sys.stderr)
        return 2
    from airflow_openai_files.emulator.runner import READY_LINE, Emulator

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    emulator = Emulator(
        data_dir=args.data_dir,
        api_key=args.api_key,
        processing_delay=args.processing_delay,
        fine_tuning_validate_seconds=args.fine_tuning_validate_seconds,
        fine_tuning_queue_seconds=args.fine_tuning_queue_seconds,
        fine_tuning_train_seconds=args.fine_tuning_train_seconds,
        fine_tuning_available_until=args.fine_tuning_available_until,
        organization_name=args.organization_name,
        host=args.host,
        port=args.port,
        max_file_bytes=args.max_file_bytes,
        max_part_bytes=args.max_part_bytes,
        max_batch_bytes=args.max_batch_bytes,
        sync_check_bytes=args.sync_check_bytes,
        file_validation=None if args.file_status_errors is None else ("status" if args.file_status_errors else "none"),
        flavor=args.flavor,
        api_versions=args.api_version,
        ad_tokens=args.ad_token,
        log_level=args.log_level,
        batch_validating_seconds=args.batch_validating_seconds,
        batch_in_progress_seconds=args.batch_in_progress_seconds,
        batch_seconds_per_request=args.batch_seconds_per_request,
        batch_finalizing_seconds=args.batch_finalizing_seconds,
        batch_cancelling_seconds=args.batch_cancelling_seconds,
        enqueued_token_limit=args.enqueued_token_limit,
        vector_store_file_seconds=args.vector_store_file_seconds,
        vector_store_attach_per_minute=args.vector_store_attach_per_minute,
    )
    try:
        emulator.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"{READY_LINE}{emulator.base_url}", flush=True)
        while not stop.wait(3600):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
