"""The web UI in a real browser: Playwright drives Debian's Chromium (``scripts/test`` installs it)
against a server running the video pipeline sample.

Screenshots of every page go to ``test-artifacts/ui/`` (git-ignored), where CI keeps them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cadenza.schemas.events import EventType
from cadenza.worker import Worker
from samples.video_pipeline import pipeline as video
from samples.video_pipeline.worker import running_workers

from .conftest import UIHarness, ui_harness
from .test_long_history import SIGNALS, long_run, signal_many
from .workflows import TASK_QUEUE, Tally, shout

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("CADENZA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

if not Path(CHROMIUM).exists():
    # On CI a missing browser is a broken setup, not a reason to pass quietly.
    if os.environ.get("CI"):
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: scripts/test installs Debian's chromium")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

async_playwright: Any = pytest.importorskip("playwright.async_api").async_playwright


async def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def _view(page: Any, name: str) -> None:
    """Waits until the page's script has rendered view ``name`` (``body[data-view]``)."""
    await page.wait_for_selector(f'body[data-view="{name}"]', timeout=15_000)


async def _video_runs(ui: UIHarness, tmp_path: Path) -> list[Any]:
    workdir = video.configure(tmp_path / "video-work")
    handles = []
    for vid in ("ui-a", "ui-b"):
        video.upload(vid, watermarked=vid == "ui-a", workdir=workdir)
        handles.append(
            await ui.client.start_workflow(
                video.VideoPipeline.run, vid, id=f"video-{vid}", task_queue=video.VIDEO_QUEUE
            )
        )
    return handles


async def _browser_scenario(ui: UIHarness, tmp_path: Path) -> None:
    a, b = await _video_runs(ui, tmp_path)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            # bypass_csp: Playwright's wait_for_function evaluates its predicate, which the
            # page's policy (no eval) would refuse; the page's own scripts do not need it.
            page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # The namespaces page; the skip link is the first stop of the keyboard.
            await page.goto(ui.url + "/")
            await _view(page, "namespaces")
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
            await _shot(page, "01-namespaces")

            # Find the watermarked video's run by a query typed in the list page's box.
            await page.click("text=default")
            await _view(page, "workflows")
            await page.fill("#query", "WorkflowId = 'video-ui-a'")
            await page.keyboard.press("Enter")
            await page.wait_for_function(
                "document.querySelectorAll('#workflows tbody tr').length === 1", timeout=15_000
            )
            await _shot(page, "02-workflows-query")
            await page.click("#workflows tbody a")
            await _view(page, "workflow")

            # The timeline shows the twelve transcodes (followed live until they have all finished).
            await page.click("#tab-timeline")
            await page.wait_for_function(
                'document.querySelectorAll(\'#timeline li[data-name="transcode"][data-status="Completed"]\')'
                ".length === 12",
                timeout=30_000,
            )
            await _shot(page, "03-workflow-timeline")
            await page.click("#tab-history")
            await page.click("#history tbody button.expand >> nth=0")
            assert "WorkflowExecutionStarted" in await page.inner_text("#history tbody tr.details")
            await _shot(page, "04-workflow-history")

            # Input that is not JSON is refused before anything is sent.
            await page.click("#action-signal")
            await page.fill("#signal-name", "approve")
            await page.fill("#signal-input", "alice")
            await page.click("#confirm-ok")
            await page.wait_for_selector("#confirm-error:not([hidden])")
            assert "not valid JSON" in await page.inner_text("#confirm-error")
            await _shot(page, "05-signal-refused")
            history = await a.fetch_history()
            assert not [e for e in history.events if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED]

            # The reviewer's signal from the UI; the page follows the run to its completion.
            await page.fill("#signal-input", '"alice"')
            await page.click("#confirm-ok")
            await page.wait_for_selector("#confirm", state="hidden")
            await page.wait_for_function(
                "document.querySelector('#wf-status') && "
                "document.querySelector('#wf-status').textContent === 'COMPLETED'",
                timeout=30_000,
            )
            result = await a.result()
            assert result.reviewer == "alice" and len(result.renditions) == 12
            assert "alice" in await page.inner_text("#io")
            await _shot(page, "06-workflow-completed")

            # Terminate the other run, with a reason.
            await page.goto(f"{ui.url}/namespaces/default/workflows/video-ui-b")
            await _view(page, "workflow")
            await page.click("#action-terminate")
            await page.fill("#terminate-reason-input", "duplicate upload")
            await _shot(page, "07-terminate-confirm")
            await page.click("#confirm-ok")
            await page.wait_for_function(
                "document.querySelector('#wf-status').textContent === 'TERMINATED'", timeout=15_000
            )
            assert (await b.describe()).status.name == "TERMINATED"
            assert await page.inner_text("#terminate-reason") == "duplicate upload"
            await _shot(page, "08-workflow-terminated")

            # Queries: the stack trace of a closed run cannot be asked; the error is shown.
            await page.click("#tab-queries")
            await page.click("#query-run")
            await page.wait_for_selector("#query-result .error, #query-result pre")
            await _shot(page, "09-query")

            # A malformed query shows the parser's message at its position.
            await page.goto(f"{ui.url}/namespaces/default/workflows")
            await _view(page, "workflows")
            bad = "WorkflowType = 'VideoPipeline' AND AND"
            await page.fill("#query", bad)
            await page.keyboard.press("Enter")
            await page.wait_for_selector("#query-error")
            text = await page.inner_text("#query-error")
            at = bad.rindex("AND")
            assert f"position {at}" in text and bad + "\n" + " " * at + "^" in text
            await _shot(page, "10-query-error")

            # The status filters and their counts.
            await page.goto(f"{ui.url}/namespaces/default/workflows?status=Terminated")
            await _view(page, "workflows")
            assert await page.inner_text("#workflows tbody") != ""
            assert "Terminated (1)" in await page.inner_text(".filters")
            await _shot(page, "11-workflows-terminated")

            # An unknown workflow shows a not-found page.
            await page.goto(f"{ui.url}/namespaces/default/workflows/no-such-video")
            await _view(page, "not-found")
            assert "not found" in (await page.inner_text("main")).lower()
            await _shot(page, "12-not-found")

            for path, view, name in (
                ("/namespaces/default", "namespace", "13-namespace"),
                (f"/namespaces/default/task-queues/{video.VIDEO_QUEUE}", "task-queue", "14-task-queue"),
                ("/cluster", "cluster", "15-clusters"),
            ):
                await page.goto(ui.url + path)
                await _view(page, view)
                if view == "task-queue":
                    # The video workers poll both kinds of task; the workflow pollers' sticky queues show.
                    for kind in ("workflow", "activity"):
                        assert await page.locator(f"#pollers-{kind} tbody tr").count() >= 1
                    assert ":sticky:" in await page.inner_text("#pollers-workflow")
                await _shot(page, name)

            # A phone's width: the workflow page still fits (no horizontal scrolling of the page).
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.goto(f"{ui.url}/namespaces/default/workflows/video-ui-a")
            await _view(page, "workflow")
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            await _shot(page, "16-workflow-phone")
            assert errors == []
        finally:
            await browser.close()


def test_find_follow_signal_and_terminate_the_video_pipeline_in_a_browser(tmp_path: Path) -> None:
    async def main() -> None:
        async with ui_harness() as ui, running_workers(ui.client, tmp_path / "video-work"):
            await asyncio.wait_for(_browser_scenario(ui, tmp_path), 150)

    asyncio.run(main())


async def _long_history_scenario(ui: UIHarness) -> None:
    # Short of its target: the run stays open with more than 10,000 events (9,999 signals and the
    # workflow tasks between them; a run takes at most 10,000 signals).
    handle = await long_run(ui, "tally-browser", SIGNALS + 1, SIGNALS - 1)
    assert (await handle.describe()).history_length > SIGNALS
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{ui.url}/namespaces/default/workflows/tally-browser")
            await _view(page, "workflow")
            pages, live = "#history-pages tr[data-event-id]", "#history-live tr[data-event-id]"
            # The first page only, and a way to the next.
            assert await page.locator(pages).count() == 200
            assert await page.locator("#history-load-more").count() == 1
            assert "200 of " in await page.inner_text("#history-count")
            await page.click("#tab-timeline")
            assert await page.locator('#timeline li[data-status="Completed"]').count() == 1
            await _shot(page, "20-long-history")

            # The last signal: the run's new events show live although 9,800 are not loaded yet.
            await signal_many(ui, "tally-browser", 1, value=2)
            await page.wait_for_function(
                "document.querySelector('#wf-status').textContent === 'COMPLETED'", timeout=30_000
            )
            await page.wait_for_function(
                "document.querySelector('#history-live').textContent.includes('WorkflowExecutionCompleted')",
                timeout=15_000,
            )
            assert await page.locator(pages).count() == 200 and await page.locator(live).count() >= 5
            first_live = int(await page.locator(live).first.get_attribute("data-event-id"))
            assert first_live > SIGNALS
            # The timeline followed too: the activity after the signals.
            await page.wait_for_function(
                "document.querySelectorAll('#timeline li[data-status=\"Completed\"]').length === 2",
                timeout=15_000,
            )
            await _shot(page, "21-long-history-followed")

            await page.click("#tab-history")
            await page.click("#history-load-more")
            await page.wait_for_function(
                f"document.querySelectorAll('{pages}').length === 400", timeout=15_000
            )
            ids = await page.eval_on_selector_all(pages, "rows => rows.map((r) => Number(r.dataset.eventId))")
            assert ids == list(range(1, 401))
            assert errors == []
        finally:
            await browser.close()


def test_a_long_history_pages_and_its_open_run_follows_live_in_a_browser() -> None:
    async def main() -> None:
        async with ui_harness() as ui:
            async with Worker(ui.client, task_queue=TASK_QUEUE, workflows=[Tally], activities=[shout]):
                await asyncio.wait_for(_long_history_scenario(ui), 120)

    asyncio.run(main())
