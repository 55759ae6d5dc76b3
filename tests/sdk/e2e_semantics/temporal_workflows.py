"""Workflows and activities written as temporalio's samples write them, with only the imports changed.

The tests beside this module run them on the real engine: argument spellings (``args=[...]``),
``*_method`` names, activities from bound methods and ``functools.partial``, dataclasses and
Pydantic models everywhere, the loggers, the sandbox no-ops and typed search attributes.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cadenza import activity, workflow
from cadenza.common import RetryPolicy, SearchAttributeKey
from cadenza.exceptions import ActivityError, ApplicationError, ApplicationErrorCategory

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

TIMEOUT = timedelta(seconds=10)


@dataclass
class Order:
    order_id: str
    quantity: int


class Receipt(BaseModel):
    order_id: str
    total: float
    issued_at: datetime


@dataclass
class Tally:
    count: int
    items: list[Order]


ISSUED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@activity.defn
async def price(order: Order, unit_price: float) -> Receipt:
    activity.logger.info("pricing %s", order.order_id)
    assert isinstance(order, Order)
    return Receipt(order_id=order.order_id, total=order.quantity * unit_price, issued_at=ISSUED_AT)


@activity.defn
def apply_tax(rates: dict[str, float], receipt: Receipt) -> Receipt:
    """Registered as ``functools.partial(apply_tax, RATES)``: the worker supplies ``rates``."""
    assert isinstance(receipt, Receipt)
    return receipt.model_copy(update={"total": round(receipt.total * (1 + rates["vat"]), 2)})


RATES = {"vat": 0.25}
taxed = functools.partial(apply_tax, RATES)


class Inventory:
    """Activities as methods of an object holding their dependencies (registered bound)."""

    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = stock

    @activity.defn
    async def reserve(self, order: Order) -> Order:
        assert isinstance(order, Order)
        self.stock[order.order_id] = self.stock.get(order.order_id, 0) - order.quantity
        return Order(order.order_id, self.stock[order.order_id])


@activity.defn(name="label")
class Labeler:
    """A callable activity class (``execute_activity_class``); the worker registers an instance."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def __call__(self, order: Order) -> str:
        assert isinstance(order, Order)
        return f"{self.prefix}:{order.order_id}"


@workflow.defn(sandboxed=False)
class PackChild:
    @workflow.run
    async def run(self, order: Order, note: str) -> Tally:
        return Tally(count=order.quantity, items=[order, Order(note, 0)])


@workflow.defn
class OrderWorkflow:
    """Every activity and child spelling, with typed payloads, and a signal and query of them."""

    def __init__(self) -> None:
        self.extra: list[Order] = []

    @workflow.run
    async def run(self, order: Order) -> dict[str, Any]:
        workflow.logger.info("order %s received", order.order_id)
        assert isinstance(order, Order)
        priced = await workflow.execute_activity(price, args=[order, 2.5], start_to_close_timeout=TIMEOUT)
        assert isinstance(priced, Receipt)
        with_tax = await workflow.execute_activity(apply_tax, priced, start_to_close_timeout=TIMEOUT)
        reserved = await workflow.execute_activity_method(
            Inventory.reserve, args=[order], start_to_close_timeout=TIMEOUT
        )
        started = workflow.start_activity_method(Inventory.reserve, order, start_to_close_timeout=TIMEOUT)
        reserved_again = await started
        label = await workflow.execute_activity_class(Labeler, order, start_to_close_timeout=TIMEOUT)
        local = await workflow.execute_local_activity(
            price, args=[order, 1.0], start_to_close_timeout=TIMEOUT
        )
        local_method = await workflow.start_local_activity_method(
            Inventory.reserve, args=[order], start_to_close_timeout=TIMEOUT
        )
        tally = await workflow.execute_child_workflow(
            PackChild.run, args=[order, "gift"], id=f"{workflow.info().workflow_id}-child"
        )
        assert isinstance(tally, Tally) and isinstance(tally.items[0], Order)
        try:
            await workflow.execute_activity(price, order, args=[order, 1.0], start_to_close_timeout=TIMEOUT)
            both = ""
        except TypeError as err:
            both = str(err)
        await workflow.wait_condition(lambda: len(self.extra) > 0)
        return {
            "priced": priced.total,
            "taxed": with_tax.total,
            "issued_at": with_tax.issued_at.isoformat(),
            "reserved": [reserved.quantity, reserved_again.quantity, local_method.quantity],
            "label": label,
            "local": local.total,
            "child": [tally.count, [o.order_id for o in tally.items]],
            "both": both,
            "extra": [type(o).__name__ for o in self.extra],
        }

    @workflow.signal
    def add(self, order: Order) -> None:
        self.extra.append(order)

    @workflow.query
    def pending(self) -> Tally:
        return Tally(count=len(self.extra), items=list(self.extra))


@workflow.defn
class Countdown:
    """Continues as new with ``args=[...]`` until the count runs out."""

    @workflow.run
    async def run(self, tally: Tally) -> Tally:
        if tally.count > 0:
            workflow.continue_as_new(
                args=[Tally(tally.count - 1, [*tally.items, Order(str(tally.count), 0)])]
            )
        return tally


@activity.defn
async def tick(n: int) -> int:
    return n + 1


@workflow.defn
class Chatty:
    """Logs at every step, to show the workflow logger is silent while replaying."""

    @workflow.run
    async def run(self) -> list[bool]:
        seen = [workflow.unsafe.is_replaying()]
        workflow.logger.info("chatty started")
        n = 0
        for _ in range(3):
            n = await workflow.execute_activity(tick, n, start_to_close_timeout=TIMEOUT)
            workflow.logger.info("chatty step %d", n)
        seen.append(workflow.unsafe.is_replaying())
        return seen


@activity.defn
async def refuse(reason: str) -> None:
    raise ApplicationError(
        f"refused: {reason}",
        {"reason": reason},
        type="Refused",
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


@workflow.defn
class Refusing:
    @workflow.run
    async def run(self, reason: str) -> None:
        await workflow.execute_activity(
            refuse,
            reason,
            start_to_close_timeout=TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


# -- async completion ------------------------------------------------------------------------------


class Approvals:
    """An activity that hands its token away and completes later (``raise_complete_async``)."""

    def __init__(self) -> None:
        self.tokens: asyncio.Queue[tuple[bytes, str, str]] = asyncio.Queue()

    @activity.defn
    async def request_approval(self, order: Order) -> Receipt:
        info = activity.info()
        await self.tokens.put((info.task_token, info.workflow_id, info.activity_id))
        activity.raise_complete_async()


@workflow.defn
class ApprovalWorkflow:
    @workflow.run
    async def run(self, order: Order) -> Receipt:
        return await workflow.execute_activity_method(
            Approvals.request_approval,
            order,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
            activity_id="approval",
        )


# -- typed search attributes -----------------------------------------------------------------------

CUSTOMER = SearchAttributeKey.for_keyword("CustomKeywordField")
NOTE = SearchAttributeKey.for_text("CustomTextField")
COUNT = SearchAttributeKey.for_int("CustomIntField")
SCORE = SearchAttributeKey.for_float("CustomDoubleField")
FLAG = SearchAttributeKey.for_bool("CustomBoolField")
WHEN = SearchAttributeKey.for_datetime("CustomDatetimeField")
TAGS = SearchAttributeKey.for_keyword_list("CustomKeywordListField")


@workflow.defn
class Tagging:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> dict[str, Any]:
        before = workflow.info().typed_search_attributes
        workflow.upsert_search_attributes(
            [
                CUSTOMER.value_set("c-2"),
                SCORE.value_set(1.5),
                TAGS.value_set(["red", "blue"]),
                WHEN.value_set(ISSUED_AT),
                FLAG.value_unset(),
            ]
        )
        after = workflow.info().typed_search_attributes
        await workflow.wait_condition(lambda: self.done)
        return {
            "before": [before.get(CUSTOMER), before.get(COUNT), before.get(FLAG), before.get(NOTE)],
            "after": [
                after.get(CUSTOMER),
                after.get(COUNT),
                after.get(SCORE),
                after.get(TAGS),
                after.get(WHEN).isoformat(),
                FLAG in after,
            ],
        }

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class LegacyTags:
    """temporalio's ``hello_search_attributes``: untyped values as one-element lists."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        workflow.upsert_search_attributes({"CustomKeywordField": ["new-value"]})
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class StoppableApproval:
    """Cancels its approval activity when told to, then waits to be finished (the activity's
    cancellation is reported by whoever completes it asynchronously)."""

    def __init__(self) -> None:
        self.stop = False
        self.done = False

    @workflow.run
    async def run(self, order: Order) -> str:
        handle = workflow.start_activity_method(
            Approvals.request_approval,
            order,
            start_to_close_timeout=timedelta(seconds=30),
            activity_id="approval",
        )
        await workflow.wait_condition(lambda: self.stop)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            outcome = type(err.cause).__name__
        await workflow.wait_condition(lambda: self.done)
        return outcome

    @workflow.signal
    def halt(self) -> None:
        self.stop = True

    @workflow.signal
    def finish(self) -> None:
        self.done = True
