"""The request lines of a pass: which model, params and schema shape them, and the size check at submit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service.batches.config import LifecycleConfig
from service.models import Batch, Pass
from service.pipeline.requests import PassRequestSpec, check_line_sizes


def spec_for(
    config: LifecycleConfig,
    *,
    model: str,
    params: Mapping[str, Any],
    pass_params: Mapping[str, Any],
    output_schema: Mapping[str, Any] | None,
) -> PassRequestSpec:
    return PassRequestSpec(
        model=model,
        supports_json_schema=config.supports_json_schema(model),
        params=params,
        pass_params=pass_params,
        output_schema=output_schema,
    )


def spec_of_pass(config: LifecycleConfig, batch: Batch, pass_: Pass) -> PassRequestSpec:
    return spec_for(
        config, model=pass_.model, params=batch.params, pass_params=pass_.params, output_schema=batch.output_schema
    )


def check_fits(config: LifecycleConfig, spec: PassRequestSpec, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """Refuse up front an item whose line could never fit in a provider batch file (it would stall the pass)."""
    check_line_sizes(spec, items, config.settings.max_bytes_per_provider_batch)
