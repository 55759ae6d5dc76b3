"""Small workflows for the UI's API tests."""

from __future__ import annotations

from datetime import timedelta

from cadenza import activity, workflow

TASK_QUEUE = "ui-tests"


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn
class Greeter:
    """Greets once an activity has shouted the name, then waits for a ``finish`` signal; ``seen``
    answers with what it has received."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.finished = False

    @workflow.run
    async def run(self, name: str) -> dict[str, object]:
        loud = await workflow.execute_activity(shout, name, start_to_close_timeout=timedelta(seconds=10))
        # The wait's timeout is a durable timer: the timeline shows it pending.
        await workflow.wait_condition(lambda: self.finished, timeout=timedelta(hours=1))
        return {"greeting": f"hello {loud}", "received": self.received}

    @workflow.signal
    def note(self, text: str) -> None:
        self.received.append(text)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def seen(self) -> list[str]:
        return list(self.received)


@workflow.defn
class Quick:
    """Completes at once with its input doubled."""

    @workflow.run
    async def run(self, n: int) -> int:
        return n * 2


@workflow.defn
class Tally:
    """Shouts once, adds up ``add`` signals until their sum reaches ``target``, then shouts again
    and returns the sum: ``target`` signals make a history of more than ``target`` events, with one
    activity at each end of it."""

    def __init__(self) -> None:
        self.total = 0

    @workflow.run
    async def run(self, target: int) -> int:
        await workflow.execute_activity(shout, "first", start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: self.total >= target)
        await workflow.execute_activity(shout, "last", start_to_close_timeout=timedelta(seconds=10))
        return self.total

    @workflow.signal
    def add(self, n: int) -> None:
        self.total += n
