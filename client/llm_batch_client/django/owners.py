"""Which management command a batch belongs to: the one its metadata names (`django_command`, set by
LlmBatchCommand at submit), if this project has it and it is an LlmBatchCommand over the same model."""

from __future__ import annotations

from typing import Any

from django.core.management import get_commands, load_command_class

from llm_batch_client.data import Batch
from llm_batch_client.django.command import LlmBatchCommand


def command_of(batch: Batch) -> LlmBatchCommand[Any] | None:
    name, model = batch.metadata.get("django_command"), batch.metadata.get("django_model")
    app = get_commands().get(name) if isinstance(name, str) else None
    if app is None or not isinstance(app, str):
        return None
    command = load_command_class(app, str(name))
    if not isinstance(command, LlmBatchCommand) or (model is not None and command.model_label() != model):
        return None
    return command
