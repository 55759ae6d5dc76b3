"""Value types shared by clients and workflows (see ``cadenza.sdk.common``)."""

from cadenza.sdk.common import (
    QueryRejectCondition,
    RawValue,
    RetryPolicy,
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

__all__ = [
    "QueryRejectCondition",
    "RawValue",
    "RetryPolicy",
    "SearchAttributeIndexedValueType",
    "SearchAttributeKey",
    "SearchAttributePair",
    "SearchAttributeUpdate",
    "TypedSearchAttributes",
    "WorkflowIDConflictPolicy",
    "WorkflowIDReusePolicy",
]
