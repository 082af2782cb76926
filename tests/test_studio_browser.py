"""The voice studio in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

One walk through the page as a person would use it: upload a clip and hear it before saving, save
it, record a voice from the (fake) microphone, play a preview, see the new voices in a Wyoming
``describe`` from a separate client, delete one, and read the checker's finding for a bad clip.
Controls are found by their accessible names, which are also their visible labels.

In CI the browser must be there (``.ci/run`` installs it): the test fails instead of skipping.
Set STUDIO_SCREENSHOT=docs/studio.png to refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import TONE_TRANSCRIPT, describe, make_voice, write_tone_clip
from studio_support import StudioServer, studio_server

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The microphone: Chrome's fake capture device, fed from a file, permission granted.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
TIMEOUT_MS = 60_000


def _browser_or_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (script/setup installs it with the dev extra)"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    reason = _browser_or_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the studio browser test needs a browser in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    base = tmp_path_factory.mktemp("studio-browser")
    make_voice(base / "voices", "tone", toml='description = "Test tone"\nlanguages = ["en"]\n')
    with studio_server(tiny_model_dir, (base / "voices",), base / "cache") as running:
        yield running


def voices_in_describe(uri: str) -> set[str]:
    """Ask from a separate Wyoming client (its own thread and event loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        event = pool.submit(asyncio.run, describe(uri)).result(timeout=30)
    assert event is not None and event.type == "info"
    return {voice["name"] for voice in event.data["tts"][0]["voices"]}


def test_add_record_try_and_delete_voices_in_a_browser(
    browser_ready: None, server: StudioServer, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    upload = tmp_path / "upload.wav"
    write_tone_clip(upload, seconds=3.0, rate=24000)
    microphone = tmp_path / "microphone.wav"  # what the fake microphone "hears", looped
    write_tone_clip(microphone, seconds=3.0, rate=48000)
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(48000 * 2, dtype=np.float32), 48000, subtype="PCM_16")
    screenshot = Path(os.environ.get("STUDIO_SCREENSHOT") or tmp_path / "studio.png")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone}"],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("dialog", lambda dialog: dialog.accept())  # "Delete the voice ...?"
            page.goto(server.url)
            expect(page.locator('[data-voice="tone"]')).to_contain_text("ready")

            # 1. Upload a clip, see the checker's verdict, hear it before saving, then save it.
            page.get_by_label("Name", exact=True).fill("Uploaded Voice")
            page.get_by_label("Audio file", exact=True).set_input_files(str(upload))
            page.get_by_label("Transcript", exact=True).fill(TONE_TRANSCRIPT)
            findings = page.locator("#findings")
            expect(findings).to_contain_text("Length 3.00 s")
            expect(findings.locator("li.error")).to_have_count(0)
            assert (
                page.get_by_role("combobox", name="Voice", exact=True).input_value() == ""
            )  # the unsaved clip
            page.get_by_label("Text", exact=True).fill("This is the voice before it is saved.")
            page.get_by_role("button", name="Speak", exact=True).click()
            spoken = page.locator("audio#spoken")
            expect(page.locator("#speak-message")).to_contain_text("real-time factor", timeout=TIMEOUT_MS)
            unsaved_duration = spoken.evaluate("a => a.duration")
            assert 0 < unsaved_duration < 1000, unsaved_duration
            assert "uploaded-voice" not in voices_in_describe(server.uri)
            page.get_by_role("button", name="Save voice", exact=True).click()
            expect(page.locator("#form-message")).to_contain_text('Saved "uploaded-voice"')
            expect(page.locator('[data-voice="uploaded-voice"]')).to_contain_text("ready")
            assert "uploaded-voice" in voices_in_describe(server.uri)

            # 2. Record a voice from the microphone (Record starts, Record again stops).
            page.get_by_label("Name", exact=True).fill("Recorded Voice")
            record = page.get_by_role("button", name="Record", exact=True)
            record.click()
            expect(record).to_have_attribute("aria-pressed", "true")
            page.wait_for_timeout(2500)
            record.click()
            expect(page.locator("#clip-summary")).to_contain_text("Recording:")
            page.get_by_label("Transcript", exact=True).fill(TONE_TRANSCRIPT)
            expect(findings.locator("li.error")).to_have_count(0)
            page.get_by_role("button", name="Save voice", exact=True).click()
            expect(page.locator("#form-message")).to_contain_text('Saved "recorded-voice"')
            expect(page.locator('[data-voice="recorded-voice"]')).to_contain_text("ready")
            saved = server.voices_dir / "recorded-voice" / "reference.wav"
            recorded = soundfile.info(str(saved))
            assert 2.0 < recorded.duration < 3.5, recorded.duration
            assert "recorded-voice" in voices_in_describe(server.uri)

            # 3. Play a preview of a saved voice: the <audio> element ends up holding the speech.
            page.get_by_role("combobox", name="Voice", exact=True).select_option("recorded-voice")
            page.get_by_label("Text", exact=True).fill(
                "Hello from the page. The voice was recorded in a browser."
            )
            page.get_by_role("button", name="Speak", exact=True).click()
            message = page.locator("#speak-message")
            expect(message).to_contain_text("Time to first audio", timeout=TIMEOUT_MS)
            expect(message).to_contain_text("real-time factor")
            duration = spoken.evaluate("a => a.duration")
            assert 0 < duration < 1000, duration

            # 4. Delete the uploaded voice.
            page.locator('[data-voice="uploaded-voice"]').get_by_role(
                "button", name="Delete", exact=True
            ).click()
            expect(page.locator('[data-voice="uploaded-voice"]')).to_have_count(0)
            assert not (server.voices_dir / "uploaded-voice").exists()
            assert "uploaded-voice" not in voices_in_describe(server.uri)

            # 5. A bad clip: the checker's finding, in words, on the page.
            page.get_by_label("Name", exact=True).fill("Silence")
            page.get_by_label("Audio file", exact=True).set_input_files(str(silent))
            expect(findings.locator("li.error", has_text="Clip is silent")).to_have_count(1)
            page.get_by_label("Transcript", exact=True).fill(TONE_TRANSCRIPT)
            page.get_by_role("button", name="Save voice", exact=True).click()
            expect(page.locator("#form-message")).to_contain_text("This clip cannot be used")
            assert not (server.voices_dir / "silence").exists()
            expect(page.locator("#chart svg")).to_be_visible()

            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert errors == []
        finally:
            browser.close()
