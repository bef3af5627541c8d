"""Operators: export a task's window of conversations to XCom or to object storage."""

from __future__ import annotations

from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
    TooManyConversationsError,
)

__all__ = ["ConversationsOperator", "ConversationsToObjectStorageOperator", "TooManyConversationsError"]
