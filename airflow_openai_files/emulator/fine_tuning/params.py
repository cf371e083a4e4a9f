"""The body of ``POST /fine_tuning/jobs``, checked like the service checks it, normalised into the
``method`` form the job object shows.

Pure functions of the body (no state): the routes call :func:`parse_create` and hand the result to
the backend, which checks the files. Unknown fields anywhere in the body are refused with the
service's "Unrecognized request argument supplied" (nested names are given as dotted paths).

Shapes (the official SDK's ``job_create_params`` and method types): ``method`` is
``{"type": "supervised" | "dpo" | "reinforcement", "<type>": {"hyperparameters": {...}}}``;
reinforcement also takes ``grader`` (required) there. The deprecated top-level ``hyperparameters``
are those of a supervised job.
"""

from __future__ import annotations

from typing import Any

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.parsing import check_known
from airflow_openai_files.limits import (
    FINE_TUNING_METHODS,
    FINE_TUNING_SUFFIX_MAX,
    METADATA_KEY_MAX,
    METADATA_MAX_PAIRS,
    METADATA_VALUE_MAX,
)

CREATE_FIELDS = (
    "model",
    "training_file",
    "validation_file",
    "hyperparameters",
    "method",
    "suffix",
    "seed",
    "metadata",
    "integrations",
)
SEED_MAX = 2_147_483_647

#: hyperparameter -> (kind, low, high); kind "int", "float" or a tuple of allowed strings.
_COMMON: dict[str, tuple[Any, float, float]] = {
    "n_epochs": ("int", 1, 50),
    "batch_size": ("int", 1, 256),
    "learning_rate_multiplier": ("float", 0, 10),
}
HYPERPARAMETERS: dict[str, dict[str, tuple[Any, float, float]]] = {
    "supervised": dict(_COMMON),
    "dpo": {**_COMMON, "beta": ("float", 0, 2)},
    "reinforcement": {
        **_COMMON,
        "compute_multiplier": ("float", 0, 10),
        "eval_interval": ("int", 1, 1_000_000),
        "eval_samples": ("int", 1, 1_000_000),
        "reasoning_effort": (("default", "low", "medium", "high"), 0, 0),
    },
}
GRADER_TYPES = ("string_check", "text_similarity", "python", "score_model", "multi")


def _hyperparameter(name: str, value: Any, rule: tuple[Any, float, float]) -> Any:
    kind, low, high = rule
    if isinstance(kind, tuple):
        if value not in kind:
            allowed = ", ".join(repr(k) for k in kind)
            raise errors.invalid_value(name, f"Invalid value for '{name}': expected one of {allowed}.")
        return value
    if value == "auto":
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind == "int" and not float(value).is_integer())
    ):
        expected = "an integer" if kind == "int" else "a number"
        raise errors.invalid_type(name, f": expected 'auto' or {expected}")
    if kind == "int":
        value = int(value)
        if not low <= value <= high:
            raise errors.integer_out_of_range(name, value, int(low), int(high))
        return value
    if not low < value <= high:
        raise errors.invalid_value(name, f"Invalid '{name}': expected a number > {low:g} and <= {high:g}, got {value}.")
    return value


def _hyperparameters(value: Any, method: str, where: str) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise errors.invalid_type(where, ": expected an object")
    rules = HYPERPARAMETERS[method]
    check_known([f"{where}.{k}" for k in value], [f"{where}.{k}" for k in rules])
    result = {name: "auto" for name in rules if name != "reasoning_effort"}
    for name, item in value.items():
        result[name] = _hyperparameter(f"{where}.{name}", item, rules[name])
    return result


def _grader(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        raise errors.missing_key_param(where)
    if not isinstance(value, dict):
        raise errors.invalid_type(where, ": expected an object")
    if value.get("type") not in GRADER_TYPES:
        allowed = ", ".join(repr(t) for t in GRADER_TYPES)
        raise errors.invalid_value(f"{where}.type", f"Invalid value for '{where}.type': expected one of {allowed}.")
    return value


def parse_method(method: Any, hyperparameters: Any) -> dict[str, Any]:
    """``method`` as the job shows it: the type, and its settings with every hyperparameter
    present (``"auto"`` where not given)."""
    if method is None:
        method = {"type": "supervised"}
    if not isinstance(method, dict):
        raise errors.invalid_type("method", ": expected an object")
    kind = method.get("type")
    if kind is None:
        raise errors.missing_key_param("method.type")
    if kind not in FINE_TUNING_METHODS:
        allowed = ", ".join(repr(m) for m in FINE_TUNING_METHODS)
        raise errors.invalid_value("method.type", f"Invalid value for 'method.type': expected one of {allowed}.")
    check_known([f"method.{k}" for k in method], ["method.type", f"method.{kind}"])
    settings = method.get(kind) or {}
    if not isinstance(settings, dict):
        raise errors.invalid_type(f"method.{kind}", ": expected an object")
    allowed_settings = ("hyperparameters", "grader") if kind == "reinforcement" else ("hyperparameters",)
    check_known([f"method.{kind}.{k}" for k in settings], [f"method.{kind}.{k}" for k in allowed_settings])
    given = settings.get("hyperparameters")
    if hyperparameters is not None:
        if kind != "supervised":
            raise errors.invalid_value(
                "hyperparameters",
                f"Invalid 'hyperparameters': the top-level hyperparameters apply to supervised jobs only; give"
                f" them in 'method.{kind}.hyperparameters'.",
            )
        if given is not None and given != hyperparameters:
            raise errors.invalid_value(
                "hyperparameters",
                "Invalid 'hyperparameters': they differ from 'method.supervised.hyperparameters'; give them in"
                " 'method' only.",
            )
        given = hyperparameters
    out: dict[str, Any] = {"hyperparameters": _hyperparameters(given, kind, f"method.{kind}.hyperparameters")}
    if kind == "reinforcement":
        out["grader"] = _grader(settings.get("grader"), "method.reinforcement.grader")
    return {"type": kind, kind: out}


def parse_metadata(value: Any) -> dict[str, str] | None:
    """At most 16 string pairs, keys up to 64 and values up to 512 characters."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise errors.invalid_type("metadata", ": expected an object")
    if len(value) > METADATA_MAX_PAIRS:
        raise errors.invalid_value(
            "metadata",
            f"Invalid 'metadata': too many properties. Expected an object with at most {METADATA_MAX_PAIRS}"
            f" properties, but got an object with {len(value)} properties instead.",
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > METADATA_KEY_MAX:
            raise errors.invalid_value(
                "metadata",
                f"Invalid 'metadata': key {key[:80]!r} is too long. Expected a key of at most {METADATA_KEY_MAX}"
                f" characters, but got {len(key)} characters instead.",
                code="string_above_max_length",
            )
        if not isinstance(item, str):
            raise errors.invalid_type(f"metadata.{key[:80]}", ": expected a string")
        if len(item) > METADATA_VALUE_MAX:
            raise errors.invalid_value(
                f"metadata.{key[:80]}",
                f"Invalid 'metadata.{key[:80]}': string too long. Expected a string with maximum length"
                f" {METADATA_VALUE_MAX}, but got a string with length {len(item)} instead.",
                code="string_above_max_length",
            )
    return dict(value)


def _integrations(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise errors.invalid_type("integrations", ": expected an array")
    for index, item in enumerate(value):
        where = f"integrations[{index}]"
        if not isinstance(item, dict) or item.get("type") != "wandb" or not isinstance(item.get("wandb"), dict):
            raise errors.invalid_value(where, f"Invalid '{where}': expected {{'type': 'wandb', 'wandb': {{...}}}}.")
        check_known([f"{where}.{k}" for k in item], [f"{where}.type", f"{where}.wandb"])
        if not isinstance(item["wandb"].get("project"), str):
            raise errors.missing_key_param(f"{where}.wandb.project")
    return list(value)


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise errors.invalid_type(name, ": expected a string")
    return value


def parse_create(body: dict[str, Any]) -> dict[str, Any]:
    """The checked request: model, files, method (with hyperparameters), suffix, seed, metadata,
    integrations. File existence and purpose are the backend's to check."""
    check_known(body, CREATE_FIELDS)
    request: dict[str, Any] = {}
    for name in ("model", "training_file"):
        value = body.get(name)
        if value is None or value == "":
            raise errors.missing_key_param(name)
        if not isinstance(value, str):
            raise errors.invalid_type(name, ": expected a string")
        request[name] = value
    request["validation_file"] = _optional_str(body, "validation_file") or None
    suffix = _optional_str(body, "suffix")
    if suffix is not None and len(suffix) > FINE_TUNING_SUFFIX_MAX:
        raise errors.invalid_value(
            "suffix",
            f"Invalid 'suffix': string too long. Expected a string with maximum length {FINE_TUNING_SUFFIX_MAX},"
            f" but got a string with length {len(suffix)} instead.",
            code="string_above_max_length",
        )
    request["suffix"] = suffix or None
    seed = body.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise errors.invalid_type("seed", ": expected an integer")
        if not 0 <= seed <= SEED_MAX:
            raise errors.integer_out_of_range("seed", seed, 0, SEED_MAX)
    request["seed"] = seed
    request["method"] = parse_method(body.get("method"), body.get("hyperparameters"))
    request["metadata"] = parse_metadata(body.get("metadata"))
    request["integrations"] = _integrations(body.get("integrations"))
    return request
