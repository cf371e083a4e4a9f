"""OpenLineage datasets and Airflow Asset events of the file operators.

OpenLineage names (https://openlineage.io/docs/spec/naming): a local file is namespace ``file``,
name its absolute path; an object store path is ``<scheme>://<bucket>`` and its key; a file on
the service is ``openai://<host[:port]>`` of the connection's Base URL and its ``file-...`` id, so
OpenAI (``openai://api.openai.com``), an Azure resource and an emulator are told apart.

Every import of the OpenLineage provider is inside a function: the provider is an optional extra
(``openlineage``) and a DAG file importing an operator must not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit


def service_namespace(base_url: str) -> str:
    """``openai://api.openai.com`` for ``https://api.openai.com/v1``; the host and port, never a path."""
    parts = urlsplit(base_url)
    return f"openai://{parts.netloc or parts.path.split('/')[0]}"


def location_dataset(location: Any) -> Any | None:
    """The OpenLineage Dataset of a local path, ``file://`` / ``scheme://`` string or ObjectStoragePath.

    None for what has no stable name (a file object handed to the upload operator).
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    from airflow_openai_files.transfer.sources import as_local_path, as_location

    try:
        location = as_location(location)
    except Exception:
        return None
    local = as_local_path(location)
    if local is not None:
        return Dataset(namespace="file", name=str(local.absolute()))
    protocol = getattr(location, "protocol", None)
    if protocol:
        bucket = getattr(location, "bucket", "") or ""
        key = getattr(location, "key", None) or getattr(location, "path", "")
        return Dataset(namespace=f"{protocol}://{bucket}", name=str(key).lstrip("/") or "/")
    return None


def file_dataset(namespace: str, file_id: str, *, dropped: bool = False) -> Any:
    """The Dataset of a file on the service; ``dropped`` adds the DROP lifecycle facet (deleted)."""
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        LifecycleStateChange,
        LifecycleStateChangeDatasetFacet,
    )

    facets: dict[str, Any] = {}
    if dropped:
        facets["lifecycleStateChange"] = LifecycleStateChangeDatasetFacet(
            lifecycleStateChange=LifecycleStateChange.DROP
        )
    return Dataset(namespace=namespace, name=file_id, facets=facets)


def operator_lineage(inputs: Iterable[Any] = (), outputs: Iterable[Any] = ()) -> Any:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[item for item in inputs if item is not None],
        outputs=[item for item in outputs if item is not None],
    )


def asset_outlets(outlets: Iterable[Any]) -> list[Any]:
    """The Airflow Assets among an operator's outlets (not asset aliases or other kinds)."""
    try:
        from airflow.sdk import Asset
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return []
    return [outlet for outlet in outlets or () if isinstance(outlet, Asset)]


def emit_asset_events(context: Any, assets: list[Any], extra: dict[str, Any]) -> None:
    """Attach ``extra`` to the event Airflow emits for each Asset outlet when the task succeeds."""
    if not assets:
        return
    events = context.get("outlet_events")
    if events is None:
        return
    for asset in assets:
        events[asset].extra.update(extra)
