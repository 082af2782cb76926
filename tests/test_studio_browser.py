"""The voice studio in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

One walk through the page as a person would use it, against the real server started from the command line
with ``--http-port``: upload a clip and hear it before saving, save it, record a voice from the (fake)
microphone, play a preview, see the new voices in a Wyoming ``describe`` from a separate client and a Wyoming
request in the speed chart, delete one, and read the checker's finding for a bad clip. Controls are found by
their accessible names, which are also their visible labels.

The browser must be there (``.ci/run`` installs Debian's ``chromium``): the test fails, it never skips.
Set STUDIO_SCREENSHOT=docs/studio.png to refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import (
    TONE_TRANSCRIPT,
    ServerProcess,
    connect,
    describe,
    free_port,
    make_voice,
    read_until,
    start_server,
    write_tone_clip,
)
from wyoming.tts import Synthesize, SynthesizeVoice

# Debian's package first; the others are what other systems (GitHub's Ubuntu runners) already have.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
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


@pytest.fixture(scope="module")
def browser() -> str:
    """The browser's executable; a failure (not a skip) when it or Playwright is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail(
            "playwright is not installed (script/setup --dev installs it with the dev extra)", pytrace=False
        )
    wanted = os.environ.get("STUDIO_CHROMIUM")
    found = shutil.which(wanted) if wanted else next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        pytest.fail(
            f"no browser ({wanted or ', '.join(BROWSERS)}); the studio test drives a real one. Install Debian's "
            "package: apt-get install -y chromium (.ci/run does).",
            pytrace=False,
        )
    return found


@dataclass
class StudioProcess:
    process: ServerProcess
    url: str
    voices_dir: Path

    @property
    def uri(self) -> str:
        return self.process.uri


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioProcess]:
    """The server as a user starts it: ``python -m wyoming_ishowtts ... --http-port PORT``."""
    base = tmp_path_factory.mktemp("studio-browser")
    make_voice(base / "voices", "tone", toml='description = "Test tone"\nlanguages = ["en"]\n')
    port = free_port()
    process = start_server(tiny_model_dir, base / "voices", base, ["--http-port", str(port)])
    yield StudioProcess(process, f"http://127.0.0.1:{port}/", base / "voices")
    assert process.stop() == 0, process.log()


def synthesize_from_wyoming(uri: str) -> None:
    """One request from a separate Wyoming client (as Home Assistant makes them)."""

    async def go() -> None:
        async with connect(uri) as client:
            await client.write_event(
                Synthesize(text="Hello from Wyoming.", voice=SynthesizeVoice("tone")).event()
            )
            await read_until(client, "audio-stop")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result(timeout=120)


def voices_in_describe(uri: str) -> dict[str, str]:
    """Name -> description, asked from a separate Wyoming client (its own thread and event loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        event = pool.submit(asyncio.run, describe(uri)).result(timeout=30)
    assert event is not None and event.type == "info"
    return {voice["name"]: voice["description"] for voice in event.data["tts"][0]["voices"]}


def test_add_record_try_and_delete_voices_in_a_browser(
    browser: str, server: StudioProcess, tmp_path: Path
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
        chromium = playwright.chromium.launch(
            executable_path=browser,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone}"],
        )
        try:
            page = chromium.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("dialog", lambda dialog: dialog.accept())  # "Delete the voice ...?"
            saves: list[str] = []  # every POST api/voices the page makes
            page.on(
                "request",
                lambda r: (
                    saves.append(r.url) if r.method == "POST" and r.url.endswith("/api/voices") else None
                ),
            )
            page.goto(server.url)
            expect(page.locator('[data-voice="tone"]')).to_contain_text("ready")
            # 0. The list plays each voice's reference clip (the browser fetches it as the page's own).
            listed = page.locator('[data-voice="tone"] audio').evaluate(
                """a => new Promise((resolve, reject) => {
                    a.onloadedmetadata = () => resolve(a.duration);
                    a.onerror = () => reject(new Error("the clip did not load"));
                    a.preload = "metadata";
                    a.load();
                })"""
            )
            assert listed == pytest.approx(3.0, abs=0.05), listed

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
            assert len(saves) == 1, saves  # one click, one request

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
                "Hello from the page. The voice was recorded in a browser at 21 °C."
            )
            page.get_by_role("button", name="Speak", exact=True).click()
            message = page.locator("#speak-message")
            expect(message).to_contain_text("Time to first audio", timeout=TIMEOUT_MS)
            expect(page.locator("#spoken-text")).to_have_text(
                "Spoken as: Hello from the page. The voice was recorded in a browser at twenty-one degrees Celsius."
            )
            expect(message).to_contain_text("real-time factor")
            duration = spoken.evaluate("a => a.duration")
            assert 0 < duration < 1000, duration

            # 4. Edit a saved voice's description and speed; Home Assistant sees the new description.
            page.locator('[data-voice="recorded-voice"]').get_by_role(
                "button", name="Edit", exact=True
            ).click()
            page.get_by_label("Description", exact=True).fill("Read into a fake microphone")
            page.get_by_label("Speed", exact=True).fill("0.9")
            page.get_by_role("button", name="Save voice", exact=True).click()
            expect(page.locator("#form-message")).to_contain_text('Saved the changes to "recorded-voice"')
            expect(page.locator('[data-voice="recorded-voice"]')).to_contain_text("speed 0.9")
            assert voices_in_describe(server.uri)["recorded-voice"] == "Read into a fake microphone"

            # 5. Delete the uploaded voice.
            page.locator('[data-voice="uploaded-voice"]').get_by_role(
                "button", name="Delete", exact=True
            ).click()
            expect(page.locator('[data-voice="uploaded-voice"]')).to_have_count(0)
            assert not (server.voices_dir / "uploaded-voice").exists()
            assert "uploaded-voice" not in voices_in_describe(server.uri)

            # 6. A bad clip: the checker's finding, in words, on the page.
            page.get_by_label("Name", exact=True).fill("Silence")
            page.get_by_label("Audio file", exact=True).set_input_files(str(silent))
            silent_finding = findings.locator('li.error[data-code="silent"]')
            expect(silent_finding).to_have_count(1)
            expect(silent_finding).to_contain_text("The clip is silent")
            page.get_by_label("Transcript", exact=True).fill(TONE_TRANSCRIPT)
            page.get_by_role("button", name="Save voice", exact=True).click()
            expect(page.locator("#form-message")).to_contain_text("This clip cannot be used")
            assert not (server.voices_dir / "silence").exists()
            # 7. The speed chart shows Home Assistant's requests beside the page's own.
            synthesize_from_wyoming(server.uri)
            expect(page.locator('#chart rect[data-source="wyoming"]').first).to_be_attached(timeout=15_000)
            expect(page.locator('#chart rect[data-source="studio"]').first).to_be_attached()

            # One save per click, and the server saved each voice once (a request resent by the browser
            # would show as a second save, or as "already exists" on the page).
            assert len(saves) == 3, saves
            log = server.process.log()
            for name in ("uploaded-voice", "recorded-voice"):
                assert log.count(f"Studio: saved voice {name} ") == 1, name

            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert errors == []
        finally:
            chromium.close()


def test_another_site_cannot_frame_the_studio(browser: str, server: StudioProcess) -> None:
    """A page of another origin (``localhost`` is not ``127.0.0.1`` to a browser) that frames the studio gets
    nothing; the studio's own origin (Home Assistant's ingress panel) may."""
    from playwright.sync_api import sync_playwright

    other_origin = server.url.replace("127.0.0.1", "localhost")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server.url)
            frames = {}
            for name, src in (("own", server.url), ("other", other_origin)):
                page.evaluate(
                    """([name, src]) => new Promise((resolve) => {
                        const frame = document.createElement("iframe");
                        frame.name = name;
                        frame.src = src;
                        frame.onload = resolve;
                        document.body.append(frame);
                    })""",
                    [name, src],
                )
                # A frame of another site runs in its own process: Playwright may learn of it (and of its
                # navigation) a moment after the parent's load event, so wait for it.
                deadline = time.monotonic() + TIMEOUT_MS / 1000
                while (frame := page.frame(name=name)) is None or frame.url in ("", "about:blank"):
                    assert time.monotonic() < deadline, f"the {name} frame never navigated"
                    page.wait_for_timeout(50)
                frames[name] = frame.evaluate("() => !!document.querySelector('#speak')")
            assert frames == {"own": True, "other": False}
        finally:
            chromium.close()
