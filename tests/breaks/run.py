"""Deliberate breaks: each one breaks the product the way a test's name says it must catch, in a scratch
copy of the checkout, and runs that test there. The test must fail under its break (tests/README.md, "How a
test here proves its claim"). Nothing here touches the checkout itself.

    .venv/bin/python tests/breaks/run.py              every break, then a table
    .venv/bin/python tests/breaks/run.py ID...        only these breaks
    .venv/bin/python tests/breaks/run.py --list       the breaks, not run
    .venv/bin/python tests/breaks/run.py --clean ID   the same tests on the unbroken copy (they must pass)

Each break is one exact text replacement (the old text must occur exactly once, so a break that no longer
applies is reported, not silently skipped). pytest collects only tests/test_*.py, so this file is not a test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Break:
    id: str
    what: str  # the break, in words
    path: str  # the file broken, relative to the checkout
    old: str
    new: str
    tests: list[str] = field(default_factory=list)  # pytest arguments: the tests that must fail
    timeout: int = 900


SENTENCES = "wyoming_ishowtts/text/sentences.py"
RUNNER = "tests/breaks/run.py"
HANDLER = "wyoming_ishowtts/server/handler.py"
WORKER = "wyoming_ishowtts/server/worker.py"
CORE = "wyoming_ishowtts/engine/core.py"
ACCELERATION = "wyoming_ishowtts/engine/acceleration.py"
BATCH = "wyoming_ishowtts/engine/batch.py"
HARDWARE = "wyoming_ishowtts/engine/hardware.py"
AUDIO_CACHE = "wyoming_ishowtts/server/audio_cache.py"
AC = "tests/test_audio_cache.py::"
SP = "tests/test_server_protocol.py::"
GC = "tests/test_gpu_check.py::"
TT = "tests/test_text.py::"
DIT = "wyoming_ishowtts/engine/dit.py"
SO = "tests/test_step_ops.py::"

BREAKS = [
    Break(
        "clause-any-gap",
        "the old pattern: every space is a clause break, the last one wins",
        SENTENCES,
        r'_CLAUSE_BREAK = re.compile(r"[,;:](?=\s)\s*|[，、；：]\s*")',
        r'_CLAUSE_BREAK = re.compile(r"[,;:，、；：]\s*|\s+")',
        [
            "tests/test_sentences.py::test_long_run_without_sentence_end_is_cut_at_a_clause_break",
            "tests/test_sentences.py::test_forced_cut_takes_the_last_clause_break_not_the_first",
        ],
    ),
    Break(
        "clause-first-not-last",
        "a forced cut takes the first clause break, not the last",
        SENTENCES,
        "            if match.start() > 0:\n                cut = match.end()\n",
        "            if match.start() > 0:\n                return match.end()\n",
        [
            "tests/test_sentences.py::test_forced_cut_takes_the_last_clause_break_not_the_first",
            "tests/test_sentences.py::test_without_a_clause_break_the_cut_is_at_the_last_word_gap",
        ],
    ),
    Break(
        "clause-mark-in-number",
        "a Latin mark is a clause break even with no space after it",
        SENTENCES,
        r'_CLAUSE_BREAK = re.compile(r"[,;:](?=\s)\s*|[，、；：]\s*")',
        r'_CLAUSE_BREAK = re.compile(r"[,;:]\s*|[，、；：]\s*")',
        ["tests/test_sentences.py::test_mark_inside_a_number_is_not_a_clause_break"],
    ),
    Break(
        "cjk-marks-not-breaks",
        "CJK clause marks are not clause breaks",
        SENTENCES,
        r'_CLAUSE_BREAK = re.compile(r"[,;:](?=\s)\s*|[，、；：]\s*")',
        r'_CLAUSE_BREAK = re.compile(r"[,;:](?=\s)\s*")',
        ["tests/test_sentences.py::test_cjk_clause_marks_are_clause_breaks"],
    ),
    Break(
        "stream-drops-last-sentence",
        "synthesize-stop drops the text still held by the splitter (the stream's last sentence)",
        HANDLER,
        "            for sentence in await self._in_text_thread(stream.speech.finish):\n",
        "            for sentence in (await self._in_text_thread(stream.speech.finish))[:0]:\n",
        [
            SP + "test_home_assistant_streaming_sequence",
            SP + "test_stream_deltas_split_inside_words",
            SP + "test_first_audio_arrives_before_the_last_text_chunk_is_sent",
        ],
    ),
    Break(
        "answer-drops-fade-tail",
        "the cross-fader's held-back tail (0.15 s) is not flushed at the end of an answer",
        "wyoming_ishowtts/engine/synthesis.py",
        "piece = np.concatenate([piece, self._fader.flush()])",
        "piece = np.concatenate([piece, self._fader.flush()[:0]])",
        [
            SP + "test_one_shot_synthesize",
            SP + "test_multi_chunk_one_shot_sends_audio_per_text_chunk",
            SP + "test_voice_chosen_by_language",
            "tests/test_checkpoints.py::test_loads_and_synthesizes",
            "tests/test_synthesize_cli.py::test_writes_a_wav",
            "tests/test_server_faults.py::test_corrupt_voice_cache_is_rebuilt_from_the_clip",
        ],
    ),
    Break(
        "resampler-not-flushed",
        "the resampler's tail is not flushed at the end of a 16 kHz answer",
        "wyoming_ishowtts/server/responder.py",
        "await self._send_audio(self._resampler.flush())",
        "self._resampler.flush()",
        ["tests/test_server_startup.py::test_output_rate_is_resampled"],
    ),
    Break(
        "disconnect-not-cancelled",
        "a client that disconnects has nothing it asked for cancelled",
        HANDLER,
        "        self.state.worker.drop_client(self.client_id)\n        self._open.clear()\n"
        "        if self._responder is not None:\n            self._responder.cancel()\n",
        "",
        ["tests/test_server_concurrency.py::test_client_disconnecting_mid_stream_does_not_disturb_others"],
    ),
    Break(
        "worker-ignores-cancel",
        "the worker runs queued segments of cancelled requests",
        WORKER,
        "while queue and queue[0].request.cancelled.is_set():",
        "while queue and queue[0].request.cancelled.is_set() and False:",
        ["tests/test_server_concurrency.py::test_client_disconnecting_mid_stream_does_not_disturb_others"],
    ),
    Break(
        "compile-off",
        "--compile compiles nothing (the eager step is kept)",
        ACCELERATION,
        "step = torch.compile(guided_step, dynamic=True)",
        "step = guided_step",
        [
            "tests/test_engine_options.py::test_compiled_model_gives_the_same_audio",
            "tests/test_engine_options.py::test_warm_up_compiles_every_length_bucket",
        ],
    ),
    Break(
        "padding-off",
        "requests are not padded to the length bucket",
        BATCH,
        "        pad_to=acceleration.bucket,\n",
        "        pad_to=1,\n",
        [
            "tests/test_engine_options.py::test_length_buckets_give_the_same_audio",
            "tests/test_engine_options.py::test_warm_up_compiles_every_length_bucket",
        ],
    ),
    Break(
        "warm-up-one-bucket",
        "the warm-up records only the first length bucket",
        ACCELERATION,
        "                    for n in lengths:\n",
        "                    for n in lengths[:1]:\n",
        ["tests/test_engine_options.py::test_warm_up_compiles_every_length_bucket"],
    ),
    Break(
        "auto-cpu-always-fp32",
        '"auto" on a CPU is not bf16 even with native bf16',
        HARDWARE,
        '    if kind == "x86-bf16":\n        return "bf16"\n',
        "",
        ["tests/test_engine_options.py::test_auto_precision_follows_the_hardware"],
    ),
    Break(
        "auto-cuda-fp16-on-pascal",
        '"auto" gives fp16 on a CUDA capability 6 GPU',
        "wyoming_ishowtts/engine/loading.py",
        'return "fp16" if major >= 7 else "fp32"',
        'return "fp16" if major >= 6 else "fp32"',
        ["tests/test_engine_options.py::test_auto_precision_follows_the_hardware"],
    ),
    Break(
        "voice-cache-never-read",
        "the prepared-voice cache file is never read (the clip is prepared again)",
        "wyoming_ishowtts/voices/cache.py",
        "        if path.is_file():\n            try:\n                voice = engine.voice(read_clip(path))",
        "        if path.is_file() and False:\n            try:\n                voice = engine.voice(read_clip(path))",
        ["tests/test_voices.py::test_prepared_voice_cache_roundtrip_and_corruption"],
    ),
    Break(
        "vocoder-silent",
        "the vocoder's output is silence",
        "wyoming_ishowtts/engine/vocoder.py",
        "return self.istft(self.spectrum(x))",
        "return self.istft(self.spectrum(x)) * 0",
        [
            "tests/test_checkpoints.py::test_loads_and_synthesizes",
            "tests/test_equivalence.py::test_vocos_decode",
        ],
    ),
    Break(
        "vocos-magnitude-guard",
        "the vocoder's magnitude guard is 10x lower than upstream's",
        "wyoming_ishowtts/engine/vocoder.py",
        "mag = torch.exp(mag).clip(max=1e2)",
        "mag = torch.exp(mag).clip(max=1e1)",
        ["tests/test_equivalence.py::test_vocos_decode"],
    ),
    Break(
        "load-error-with-traceback",
        "a model that cannot load is logged as a crash (traceback), not as the user's error",
        WORKER,
        "            if isinstance(err, IShowTTSError):  # a message for the user, not a bug: no traceback",
        "            if False:",
        ["tests/test_server_startup.py::test_model_that_cannot_load_exits_nonzero"],
    ),
    Break(
        "start-up-crash",
        "an unrelated crash at start-up, before the model is loaded",
        WORKER,
        "            engine = self._load_engine()\n",
        '            raise RuntimeError("unrelated start-up bug")\n',
        ["tests/test_server_startup.py::test_model_that_cannot_load_exits_nonzero"],
    ),
    Break(
        "no-backpressure",
        "the worker runs ahead of a client that does not read",
        WORKER,
        "if head.request.backlog >= self._max_backlog:",
        "if False:",
        [
            "tests/test_server_backpressure.py::test_describe_is_answered_while_a_client_is_stalled",
            "tests/test_server_backpressure.py::test_client_that_stops_reading_is_not_buffered_without_limit",
        ],
    ),
    Break(
        "describe-blocks-loop",
        "describe blocks the event loop for a second",
        HANDLER,
        "            await self._send((await self._info()).event())\n",
        "            __import__('time').sleep(1.0)\n            await self._send((await self._info()).event())\n",
        ["tests/test_server_backpressure.py::test_describe_is_answered_while_a_client_is_stalled"],
    ),
    Break(
        "timeout-zero-taken",
        "positive_float takes 0",
        "wyoming_ishowtts/arguments.py",
        "    if not value > 0:  # also refuses nan",
        "    if not value >= 0:",
        ["tests/test_healthcheck.py::test_timeout_must_be_positive"],
    ),
    Break(
        "timeout-nan-taken",
        "positive_float takes nan",
        "wyoming_ishowtts/arguments.py",
        "    if not value > 0:  # also refuses nan",
        "    if value <= 0:",
        ["tests/test_healthcheck.py::test_timeout_must_be_positive"],
    ),
    Break(
        "cli-ignores-seed",
        "the CLI ignores --seed",
        "wyoming_ishowtts/synthesize.py",
        '"seed": args.seed,',
        '"seed": None,',
        ["tests/test_synthesize_cli.py::test_writes_a_wav"],
    ),
    Break(
        "cli-ignores-voice-speed",
        "the CLI ignores the voice.toml's speed",
        "wyoming_ishowtts/synthesize.py",
        "        synthesis_options(info), **{",
        "        synthesis_options(info), speed=1.0, **{",
        ["tests/test_synthesize_cli.py::test_the_cli_and_the_server_give_the_same_samples"],
    ),
    Break(
        "server-leaks-memory",
        "the server keeps 8 MiB for every plain request",
        HANDLER,
        "    async def _on_synthesize(self, synthesize: Synthesize) -> None:\n",
        "    async def _on_synthesize(self, synthesize: Synthesize) -> None:\n"
        "        globals().setdefault('_LEAK', []).append(b'x' * (8 << 20))\n",
        ["tests/test_soak.py::test_small_soak_run"],
    ),
    Break(
        "fuzz-thread-leak",
        "the server starts a thread for every connection that never ends (run with one fuzz test only)",
        HANDLER,
        "    async def _dispatch(self, event: Event) -> None:\n",
        "    async def _dispatch(self, event: Event) -> None:\n"
        "        if not getattr(self, '_leaked', False):\n"
        "            self._leaked = True\n"
        "            __import__('threading').Thread(target=__import__('threading').Event().wait, daemon=True).start()\n",
        ["tests/test_protocol_fuzz.py", "-k", "test_hostile_json_gets_an_error"],
    ),
    Break(
        "fuzz-error-logged",
        "an unknown event type is logged as an ERROR (run with one fuzz test only)",
        HANDLER,
        '            await self._error(UnknownEventError(f"unexpected event type {event.type!r}"))',
        '            _LOGGER.error("unknown event")\n'
        '            await self._error(UnknownEventError(f"unexpected event type {event.type!r}"))',
        ["tests/test_protocol_fuzz.py", "-k", "test_valid_events_in_any_order"],
    ),
    Break(
        "crossfader-holds-two-fades",
        "the cross-fader holds back two fades' worth (the whole join is still right)",
        "wyoming_ishowtts/engine/chunking.py",
        "keep = min(self._fade, len(joined))",
        "keep = min(2 * self._fade, len(joined))",
        ["tests/test_chunking.py::test_crossfader_equals_join"],
    ),
    Break(
        "segmenter-no-percent-run",
        "the built-in segmenter no longer keeps a run ending in '%' together",
        "wyoming_ishowtts/engine/tokenizer.py",
        '_WORD_RUN = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*%?")',
        '_WORD_RUN = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")',
        ["tests/test_tokenizer.py::test_builtin_segmenter_random_differential"],
    ),
    Break(
        "balancer-ignores-loading",
        "HAProxy's check takes any text-to-speech info, a replica still loading its model included",
        "docker/haproxy.cfg",
        'tcp-check expect rstring "\\"tts\\": ?\\[\\{[^[]*\\"description\\": ?\\"[^\\"]*\\(model ready\\)\\""',
        'tcp-check expect rstring "\\"tts\\": ?\\[\\{"',
        ["tests/test_scale.py::test_a_replica_loading_its_model_gets_no_request_until_it_is_ready"],
    ),
    Break(
        "gpu-check-writes-at-the-end",
        "gpu-check writes its outputs only when every stage is done (a killed run leaves none)",
        "ishowtts_dev/gpu/__main__.py",
        "        self.stages[name] = info\n        self.write()\n",
        "        self.stages[name] = info\n",
        [GC + "test_a_run_killed_after_its_first_stage_leaves_that_stage_in_results_and_table"],
    ),
    Break(
        "gpu-check-ignores-sigterm",
        "gpu-check dies of SIGTERM at once: its running stage (a session of its own) is left running",
        "ishowtts_dev/gpu/__main__.py",
        "previous = signal.signal(signal.SIGTERM, _terminate)",
        "previous = signal.getsignal(signal.SIGTERM)",
        [GC + "test_sigterm_mid_stage_kills_the_stage_and_leaves_it_as_a_killed_row"],
    ),
    Break(
        "gpu-check-stops-at-a-failure",
        "a failed stage ends the gpu-check run: the stages after it never run or show",
        "ishowtts_dev/gpu/__main__.py",
        '        if status != "ok":\n            tail = ',
        '        if status != "ok":\n            return 1\n            tail = ',
        [GC + "test_a_failed_stage_is_a_failed_row_and_the_other_stages_still_run"],
    ),
    Break(
        "gpu-check-no-wheel-check",
        "gpu-check does not look at the carried wheel set before it installs and probes the GPU",
        "ishowtts_dev/gpu/__main__.py",
        "problem = gpu_wheels.missing(args.wheels)",
        "problem = None",
        [GC + "test_cuda_run_without_the_wheel_set_stops_at_once_before_touching_the_gpu"],
    ),
    Break(
        "fallback-without-tf32",
        "the fp32 fallback samples with true fp32 matrix multiplies",
        CORE,
        "with tf32_matmuls() if self.fell_back else contextlib.nullcontext():",
        "with contextlib.nullcontext():",
        ["tests/test_gpu_paths.py::test_the_fp32_fallback_runs_its_matmuls_in_tf32_and_nothing_else_does"],
    ),
    Break(
        "engine-private-by-name",
        "a test reaches into an engine under another name (`half._files`, an Engine private)",
        "tests/test_gpu_paths.py",
        '    half = load(model_dir, EagerRecorder(), precision="bf16")\n',
        '    half = load(model_dir, EagerRecorder(), precision="bf16")\n    assert half._files is not None\n',
        ["tests/test_layering.py::test_nothing_outside_the_engine_touches_a_private_member_of_an_engine"],
    ),
    Break(
        "engine-private-through-a-chain",
        "gpu-check reads a private member of what an engine holds (`engine.acceleration._x`)",
        "ishowtts_dev/gpu/stages.py",
        "        chunk_loop = engine.acceleration.chunk_graphs or euler_loop\n",
        "        chunk_loop = engine.acceleration._chunk_graphs or euler_loop\n",
        ["tests/test_layering.py::test_nothing_outside_the_engine_touches_a_private_member_of_an_engine"],
    ),
    Break(
        "dit-random-init",
        "the DiT is built on the CPU, every weight filled with random numbers before the checkpoint's",
        "wyoming_ishowtts/engine/loading.py",
        '    with torch.device("meta"), NoInit():\n',
        "    with contextlib.nullcontext():\n",
        ["tests/test_checkpoints.py::test_the_dit_is_built_without_random_weights_and_holds_the_files_own"],
    ),
    Break(
        "meta-init-imports-dynamo",
        "the meta-device build runs nn.init, whose meta normal_ imports torch._dynamo and sympy",
        "wyoming_ishowtts/engine/loading.py",
        '    with torch.device("meta"), NoInit():\n',
        '    with torch.device("meta"):\n',
        ["tests/test_checkpoints.py::test_loading_the_model_imports_no_compiler"],
    ),
    Break(
        "dit-in-the-file-mapping",
        "the DiT's weights are the memory-mapped checkpoint's tensors (a rewrite of the file changes them)",
        "wyoming_ishowtts/engine/loading.py",
        "    _own_memory(model, borrowed)\n",
        "",
        ["tests/test_checkpoints.py::test_the_dit_is_built_without_random_weights_and_holds_the_files_own"],
    ),
    Break(
        "sticky-cuda-error-not-fatal",
        "after an illegal memory access the server stays up and says it is ready",
        WORKER,
        "        reason = sticky_cuda_error(err)\n        if reason is None or not self.ready.is_set():",
        "        reason = None\n        if reason is None or not self.ready.is_set():",
        [
            "tests/test_server_faults.py::"
            "test_a_sticky_cuda_error_is_fatal_readiness_drops_and_the_server_exits_non_zero"
        ],
    ),
    Break(
        "sticky-batch-retried",
        "a batch that broke the CUDA context is retried item by item",
        WORKER,
        "            if len(group) > 1 and sticky_cuda_error(failure) is None:",
        "            if len(group) > 1:",
        ["tests/test_worker_scheduling.py::test_a_batch_the_gpu_failed_for_good_is_not_retried_one_by_one"],
    ),
    Break(
        "describe-always-ready",
        "describe's answer says the model is ready while it still loads",
        HANDLER,
        "description=program_description(self.state.worker.ready.is_set()),",
        "description=program_description(True),",
        ["tests/test_scale.py::test_a_replica_loading_its_model_gets_no_request_until_it_is_ready"],
    ),
    Break(
        "upload-no-min-rate",
        "a studio upload is refused only when idle, however slowly it trickles in",
        "wyoming_ishowtts/server/studio/forms.py",
        "data = await asyncio.wait_for(read, max(0.0, min(BODY_IDLE_SECONDS, left)))",
        "data = await asyncio.wait_for(read, BODY_IDLE_SECONDS)",
        ["tests/test_studio_api.py::test_an_upload_trickling_in_gives_its_slot_up"],
    ),
    Break(
        "docs-heading-renamed",
        "a heading that the README and docs/install.md link to is renamed",
        "docs/server.md",
        "\n## Connecting Home Assistant\n",
        "\n## Connect Home Assistant\n",
        ["tests/test_docs.py::test_every_relative_link_names_an_existing_file_and_heading"],
    ),
    Break(
        "setup-dev-renamed",
        "script/setup no longer takes the README's --dev (it is called --all)",
        "script/setup",
        "    --dev) mode=dev ;;",
        "    --all) mode=dev ;;",
        ["tests/test_docs.py::test_every_readme_command_exists_and_takes_the_options_the_readme_gives"],
    ),
    Break(
        "setup-ignores-unknown-arguments",
        "script/setup takes a mistyped argument for the plain set-up",
        "script/setup",
        '    *)\n        echo "script/setup: unknown argument',
        '    *) ;;\n    __never)\n        echo "script/setup: unknown argument',
        ["tests/test_docs.py::test_script_setup_refuses_an_unknown_argument_before_it_installs_anything"],
    ),
    # -- the text front end (tests/test_text.py) --
    Break(
        "text-cardinal-no-hyphen",
        "English tens and ones without their hyphen (twenty one)",
        "wyoming_ishowtts/text/english_numbers.py",
        'words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))',
        'words.append(_TENS[tens] + (f" {_ONES[ones]}" if ones else ""))',
        [f"{TT}test_english_cardinals_equal_num2words", f"{TT}test_english_ordinals_equal_num2words"],
    ),
    Break(
        "text-chinese-yi-shi",
        "Chinese numbers keep 一十 at the start (一十五)",
        "wyoming_ishowtts/text/chinese_numbers.py",
        '    if words.startswith("一十"):\n        words = words[1:]\n',
        "",
        [f"{TT}test_chinese_cardinals_equal_cn2an"],
    ),
    Break(
        "text-splitter-decides-early",
        "the splitter ends a sentence at an end mark that is the last character so far, before the next arrives",
        "wyoming_ishowtts/text/sentences.py",
        "    if end == len(text):\n        return end if final else None\n    if end == stop:",
        "    if end == len(text):\n        return end\n    if end == stop:",
        [
            f"{TT}test_a_stream_cut_anywhere_gives_the_sentences_of_the_whole_text",
            f"{TT}test_deltas_split_inside_a_number_url_tag_or_marker",
        ],
    ),
    Break(
        "text-blocks-no-hold",
        'the block filter lets a partial opening tag through ("<thi" + "nk>")',
        "wyoming_ishowtts/text/blocks.py",
        "cut = _held_tail(text, _OPENERS)",
        "cut = len(text)",
        [
            f"{TT}test_a_stream_cut_anywhere_gives_the_sentences_of_the_whole_text",
            f"{TT}test_the_block_filter_holds_back_only_what_could_still_be_a_tag",
        ],
    ),
    Break(
        "text-unclosed-block-spoken",
        "the text of a reasoning block that is never closed is let through",
        "wyoming_ishowtts/text/blocks.py",
        "                    text = text[_held_tail(text, (self._closer,)) :]\n",
        "                    out.append(text[: _held_tail(text, (self._closer,))])\n"
        "                    text = text[_held_tail(text, (self._closer,)) :]\n",
        [f"{TT}test_nothing_after_an_unclosed_reasoning_block_is_spoken"],
    ),
    Break(
        "text-saint-eats-capital",
        'St. before a capital eats that capital, so "St. St." is not idempotent',
        "wyoming_ishowtts/text/symbols.py",
        r"(?P<next>\s+(?=[A-Z]))?",
        r"(?P<next>\s+[A-Z])?",
        [f"{TT}test_spoken_form_of_known_texts_is_idempotent"],
    ),
    Break(
        "text-fullwidth-colon-kept",
        "a full-width colon, which F5-TTS's vocabulary lacks, reaches the model",
        "wyoming_ishowtts/text/symbols.py",
        '-:;，。！？、…")',
        '-:;，。！？、：；…")',
        [f"{TT}test_every_token_of_the_spoken_form_is_in_the_model_vocabulary"],
    ),
    Break(
        "text-digits-left",
        "a digit string is left as digits",
        "wyoming_ishowtts/text/english_numbers.py",
        '    return " ".join(_ONES[int(char)] for char in text)',
        "    return text",
        [f"{TT}test_no_ascii_digit_is_left", f"{TT}test_bad_input_is_spoken_streamed_and_ends"],
    ),
    Break(
        "text-mark-run-unbounded",
        "a streamed run of end marks is held whole and rescanned on every delta",
        "wyoming_ishowtts/text/sentences.py",
        "stop = min(len(text), index + max_chars)",
        "stop = len(text)",
        [f"{TT}test_a_stream_holds_at_most_a_window_of_undecided_text"],
    ),
    Break(
        "text-first-is-stone",
        "1st is read as one stone",
        "wyoming_ishowtts/text/rules.py",
        'if symbol == "st" and match.start("unit") == match.end("value"):',
        "if False:",
        [f"{TT}test_english_reading"],
    ),
    Break(
        "cache-never-hits",
        "the audio cache finds an entry but the segment is synthesized again",
        WORKER,
        "                segment.state, segment.cached = _HIT, audio\n",
        "                segment.state = _MISS\n",
        [
            AC + "test_a_repeated_plain_request_is_bit_identical_and_takes_no_engine_step",
            AC + "test_a_repeated_stream_is_bit_identical_and_takes_no_engine_step",
            AC + "test_a_stream_reuses_a_sentence_said_before_and_synthesizes_only_the_rest",
            AC + "test_a_server_restarted_on_the_same_folder_hits",
        ],
    ),
    Break(
        "cache-key-without-voice",
        "the audio cache key leaves the voice out",
        AUDIO_CACHE,
        'return _digest(tag.encode(), audio_identity.encode(), voice.encode(), text.encode("utf-8"))',
        'return _digest(tag.encode(), audio_identity.encode(), text.encode("utf-8"))',
        [AC + "test_another_text_voice_speed_or_transcript_misses"],
    ),
    Break(
        "cache-no-checksum",
        "an audio cache entry's checksum is not checked",
        AUDIO_CACHE,
        "    if zlib.crc32(body) != crc:\n",
        "    if False:\n",
        [AC + "test_a_damaged_entry_is_a_miss_and_is_written_again[flipped]"],
    ),
    Break(
        "cache-two-syntheses",
        "two segments with one new key are both synthesized",
        WORKER,
        "        if owner is None or owner is segment:\n",
        "        if True:\n",
        [AC + "test_two_clients_asking_for_one_new_text_at_once_cost_one_synthesis"],
    ),
    Break(
        "cache-stale-miss",
        "a segment that missed before its key was stored is synthesized again instead of looking again",
        WORKER,
        "            if stored:  # and those that missed before it was stored",
        "            if False:  # and those that missed before it was stored",
        [
            AC
            + "test_two_clients_asking_for_one_new_text_at_once_cost_one_synthesis[before the second is chosen]"
        ],
    ),
    Break(
        "cache-waits-on-stalled-reader",
        "a segment waits for its key's synthesis even while that one's client reads nothing",
        WORKER,
        "        return time.monotonic() - owner.request.full_since >= STALLED_READER_SECONDS\n",
        "        return False\n",
        [AC + "test_a_client_that_stops_reading_does_not_hold_up_another_asking_for_the_same_text"],
    ),
    Break(
        "cache-fifo-not-lru",
        "a hit does not make its entry the most recently used",
        AUDIO_CACHE,
        "            self._index.move_to_end(key)\n        with contextlib.suppress(OSError):",
        "            pass\n        with contextlib.suppress(OSError):",
        [AC + "test_a_thousand_distinct_texts_keep_the_cache_under_its_bound"],
    ),
    Break(
        "cache-unbounded",
        "the audio cache never evicts",
        AUDIO_CACHE,
        "                if self._bytes <= self.max_bytes or not self._index:\n",
        "                if True:\n",
        [AC + "test_a_thousand_distinct_texts_keep_the_cache_under_its_bound"],
    ),
    Break(
        "cache-keeps-deleted-voices",
        "the entries of a deleted voice stay",
        WORKER,
        "        if digests:  # no voice at all",
        "        if not digests:  # no voice at all",
        [AC + "test_deleting_a_voice_drops_its_entries"],
    ),
    Break(
        "warm-phrase-never-yields",
        "a warm-up phrase on the engine finishes before a client's request that arrived meanwhile",
        WORKER,
        "        if self._abort_all.is_set() or self._stopping:\n            return True\n        with self._cond:\n"
        "            for client_id, queue in self._queues.items():",
        "        if self._abort_all.is_set() or self._stopping:\n            return True\n        with self._cond:\n"
        "            for client_id, queue in {}.items():",
        [AC + "test_a_warm_phrase_gives_way_to_a_client_at_its_next_step"],
    ),
    # Issue 24: what one guided sampler step launches.
    Break(
        "rope-q-and-k-apart",
        "RoPE rotates q and k in two passes, not one over both",
        DIT,
        "        q, k = self._rotate(qkv[:, :, :2], rope)  # each (B, N, H, dh)\n",
        "        q, k = (self._rotate(qkv[:, :, i : i + 1], rope)[0] for i in range(2))\n",
        [SO + "test_a_guided_step_launches_few_operations_per_layer"],
    ),
    Break(
        "modulation-per-step",
        "every step computes its own modulation (time embedding and 23 linear maps) from its time",
        "wyoming_ishowtts/engine/sampler.py",
        "        model.modulation(t[:-1]),\n",
        "        torch.cat([model.modulation(t[i : i + 1]) for i in range(nfe)]),\n",
        ["tests/test_numerics.py::test_sampler_hands_the_model_float32_time_once_per_chunk"],
    ),
    Break(
        "loop-replay-per-step",
        "the sampler hands the chunk's loop one step at a time (a recorded graph per step, replayed nfe times)",
        "wyoming_ishowtts/engine/sampler.py",
        "    x = loop(model, inputs.x, inputs.chunk, inputs.modulation, inputs.dt, step, cancelled)  # (B, N, mel)\n",
        "    x = inputs.x\n"
        "    for i in range(inputs.nfe):\n"
        "        x = loop(model, x, inputs.chunk, inputs.modulation[i : i + 1], inputs.dt[i : i + 1], step, cancelled)\n",
        [
            "tests/test_gpu_paths.py::test_a_multi_chunk_synthesis_is_one_replay_per_chunk_with_eager_audio",
            "tests/test_chunk_graphs.py::test_a_chunk_is_one_replay_of_all_its_steps",
        ],
    ),
    Break(
        "graph-ignores-step-count",
        "a chunk graph's layout leaves out the number of steps (a 4-step graph stands in for a 3-step chunk)",
        "wyoming_ishowtts/engine/chunk_graphs.py",
        "        return (batch, nfe, chunk.cfg_strength, chunk.guided, shapes)\n",
        "        return (batch, chunk.cfg_strength, chunk.guided, shapes)\n",
        ["tests/test_chunk_graphs.py::test_the_step_count_is_part_of_the_layout"],
    ),
    Break(
        "graph-ignores-cancel",
        "a replayed chunk never asks whether its synthesis was cancelled",
        "wyoming_ishowtts/engine/chunk_graphs.py",
        "        if cancelled is not None and cancelled():\n            raise",
        "        if False:\n            raise",
        [
            "tests/test_chunk_graphs.py::test_cancellation_is_asked_once_per_replayed_chunk_and_before_each_eager_step"
        ],
    ),
    Break(
        "bucket-table-lost-with-the-step-table",
        "graph-speed's bucket timings run only when its step table did not fail",
        "ishowtts_dev/gpu/stages.py",
        "    finally:\n        bucket_speed(plan, rec)\n",
        "    except Exception:\n        raise\n    bucket_speed(plan, rec)\n",
        ["tests/test_gpu_check.py::test_bucket_timings_survive_a_failing_bucket_and_a_failing_step_table"],
    ),
    Break(
        "bucket-failure-ends-the-table",
        "a length bucket whose timing fails ends the bucket table (no row of its own, none after it)",
        "ishowtts_dev/gpu/stages.py",
        "        except Exception as exc:  # this bucket's row says so; the others still run\n",
        "        except ZeroDivisionError as exc:\n",
        ["tests/test_gpu_check.py::test_bucket_timings_survive_a_failing_bucket_and_a_failing_step_table"],
    ),
    Break(
        "input-layer-per-half",
        "the input layer runs once per half (conditional, unconditional), then joins them",
        DIT,
        "        h = self.proj(torch.cat((x, halves), dim=-1).flatten(0, 1))  # one copy into (R, N, 2 mel + T)\n",
        "        h = torch.cat([self.proj(torch.cat((x[0], half), dim=-1)) for half in halves])\n",
        [SO + "test_guidance_runs_the_input_layer_once_for_both_halves"],
    ),
]


BREAKS += [
    # -- a request's life (issue 21) --
    Break(
        "handler-writes-queue",
        "the handler posts a plain request's end into its result queue itself",
        HANDLER,
        "        self.state.worker.close_input(request)\n",
        "        request.input_closed.set()\n        request.results.put_nowait(None)\n",
        ["tests/test_layering.py::test_only_the_worker_writes_a_result_queue_or_frees_a_slot"],
    ),
    Break(
        "responder-frees-slot",
        "the responder frees its request's slot itself",
        "wyoming_ishowtts/server/responder.py",
        "        # The slot is free (the worker freed it) before the client can see the end.\n",
        "        worker._finish_request(request)\n",
        ["tests/test_layering.py::test_only_the_worker_writes_a_result_queue_or_frees_a_slot"],
    ),
    Break(
        "pieces-keep-the-slot",
        "a request's pieces end without giving its queue slot back (it is freed only when the client goes)",
        WORKER,
        "        finally:\n            self._finish_request(request)\n",
        "        finally:\n            pass\n",
        ["tests/test_server_backpressure.py::test_idle_stream_gives_its_queue_slot_back"],
    ),
    Break(
        "studio-upload-status",
        "the studio refuses an oversized upload with 400, not 413",
        "wyoming_ishowtts/errors.py",
        'UPLOAD_TOO_LARGE = StudioCode("upload-too-large", 413)',
        'UPLOAD_TOO_LARGE = StudioCode("upload-too-large", 400)',
        ["tests/test_studio_api.py::test_oversized_upload_is_refused_before_it_is_read"],
    ),
    # -- the command line --
    Break(
        "shutdown-timeout-negative",
        "--shutdown-timeout takes -1, nan and inf (a bare float)",
        "wyoming_ishowtts/arguments.py",
        '    if not 0 <= value < float("inf"):  # also refuses nan\n        raise argparse.ArgumentTypeError(f"must be a finite',
        '    if False:\n        raise argparse.ArgumentTypeError(f"must be a finite',
        ["tests/test_server_startup.py::test_a_shutdown_timeout_must_be_a_finite_number_zero_or_more"],
    ),
    Break(
        "cli-restates-a-default",
        "--max-buffered-pieces restates its default, and a different one",
        "wyoming_ishowtts/server/cli.py",
        'default=_server("max_buffered_pieces"),',
        "default=3,",
        ["tests/test_server_startup.py::test_the_command_line_defaults_are_the_settings_defaults"],
    ),
    # -- the runner itself --
    Break(
        "runner-counts-set-up-errors",
        "the break runner counts a test that errored in set-up as one that caught its break",
        RUNNER,
        '        elif case.find("error") is not None:\n            outcome = "error"\n',
        '        elif case.find("error") is not None:\n            outcome = "failed"\n',
        ["tests/test_breaks_runner.py::test_a_test_that_errors_in_set_up_has_not_caught_its_break"],
    ),
    Break(
        "loading-replica-comes-up",
        "a replica still loading says it is ready from its fourth describe on (after the test's two and "
        "HAProxy's first check): it is marked down, then up while it loads",
        HANDLER,
        "description=program_description(self.state.worker.ready.is_set()),",
        "description=program_description(self.state.worker.ready.is_set() or "
        'len(self.state.__dict__.setdefault("_asked", [])) > 2 or bool(self.state._asked.append(1))),',
        ["tests/test_scale.py::test_a_replica_loading_its_model_gets_no_request_until_it_is_ready"],
    ),
    Break(
        "int8-not-applied",
        "--precision int8 loads the float32 model and never quantizes it",
        "wyoming_ishowtts/engine/loading.py",
        '    if precision == "int8":\n        quantize_dit(',
        "    if False:\n        quantize_dit(",
        [
            "tests/test_cpu.py::test_int8_runs_int8_layers_and_speaks_the_right_length[tiny]",
            "tests/test_cpu.py::test_int8_stays_within_the_measured_snr[tiny]",
        ],
    ),
    Break(
        "int8-on-gpu",
        "--precision int8 is not refused on a GPU",
        "wyoming_ishowtts/engine/quantize.py",
        '    if device.type != "cpu":\n        return (',
        "    if False:\n        return (",
        ["tests/test_cpu.py::test_int8_is_refused_on_a_gpu"],
    ),
    Break(
        "int8-rule-either",
        "auto takes int8 where it was fast enough OR close enough, not both",
        HARDWARE,
        "measured.step_speedup >= INT8_MIN_SPEEDUP and measured.snr_db",
        "measured.step_speedup >= INT8_MIN_SPEEDUP or measured.snr_db",
        ["tests/test_cpu.py::test_auto_picks_int8_only_at_the_bar"],
    ),
    Break(
        "threads-logical",
        "physical cores counted per logical CPU (SMT siblings twice)",
        HARDWARE,
        "        cores.add((package, core))",
        "        cores.add((package, str(cpu)))",
        ["tests/test_cpu.py::test_physical_cores_count_smt_siblings_once"],
    ),
    Break(
        "threads-quota-ignored",
        "the default threads ignore the container's CPU quota",
        HARDWARE,
        "    return max(1, min(cores, limit) if limit else cores)",
        "    return max(1, cores)",
        ["tests/test_cpu.py::test_default_threads_are_physical_cores_within_the_quota"],
    ),
    Break(
        "threads-torch-default",
        "without --threads the engine leaves torch's own default",
        "wyoming_ishowtts/engine/loading.py",
        "    count = threads or default_threads()\n    torch.set_num_threads(count)",
        "    count = threads or torch.get_num_threads()\n    torch.set_num_threads(count)",
        ["tests/test_cpu.py::test_engine_sets_the_default_threads"],
    ),
    Break(
        "interop-default",
        "the inter-op threads are left at torch's default",
        "wyoming_ishowtts/engine/loading.py",
        "            torch.set_num_interop_threads(1)",
        "            pass",
        ["tests/test_cpu.py::test_one_inter_op_thread_in_a_fresh_process"],
    ),
    Break(
        "max-reference-ignored",
        "max_reference_seconds is read but the clip is never cut",
        "wyoming_ishowtts/engine/voice.py",
        "    if max_seconds is not None and len(clip) > max_seconds * sample_rate:",
        "    if False:",
        ["tests/test_reference_length.py::test_prepared_clip_keeps_at_most_max_reference_seconds"],
    ),
    Break(
        "cut-not-at-pause",
        "the clip is cut at the limit itself, through a syllable, not at a pause",
        "wyoming_ishowtts/engine/reference.py",
        "        return audio[: int((start + end) / 2 * rate)]",
        "        return audio[:limit]",
        ["tests/test_reference_length.py::test_cut_falls_in_the_last_pause_within_the_limit"],
    ),
    Break(
        "transcript-not-cut",
        "the clip is cut but its transcript is kept whole",
        "wyoming_ishowtts/engine/voice.py",
        "        text = cut_transcript(text, len(clip) / before)",
        "        pass",
        ["tests/test_reference_length.py::test_prepared_clip_keeps_at_most_max_reference_seconds"],
    ),
    Break(
        "audio-cache-ignores-limit",
        "the audio cache's voice digest leaves out max_reference_seconds",
        AUDIO_CACHE,
        '        options += f" max_reference_seconds={info.max_reference_seconds!r}"',
        "        pass",
        ["tests/test_reference_length.py::test_the_limit_is_part_of_both_cache_keys"],
    ),
    Break(
        "no-trim-advice",
        "the checker never suggests trimming a long clip",
        "wyoming_ishowtts/voices/check.py",
        "    if used > TRIM_ADVICE_SECONDS:",
        "    if False:",
        ["tests/test_reference_length.py::test_checker_says_what_each_second_costs"],
    ),
    # The image tests build the image (its cached layers make a rebuild with a changed last line quick) and
    # run it: minutes each, and the break's image is left under the test's tag until the next run rebuilds it.
    Break(
        "image-entrypoint-path",
        "the x86 image's ENTRYPOINT names a file that is not there",
        "docker/Dockerfile",
        'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]',
        'ENTRYPOINT ["/usr/local/bin/entrypoint"]',
        ["tests/test_images.py::test_describe_lists_the_voice_and_says_the_model_is_ready[x86]"],
        timeout=2400,
    ),
    Break(
        "image-healthcheck-port",
        "the x86 image's HEALTHCHECK asks a port nothing listens on",
        "docker/Dockerfile",
        '"--uri", "tcp://127.0.0.1:10200", "--timeout", "10", "--quiet"]',
        '"--uri", "tcp://127.0.0.1:10201", "--timeout", "10", "--quiet"]',
        ["tests/test_images.py::test_the_images_healthcheck_turns_healthy[x86]"],
        timeout=2400,
    ),
]


def scratch_copy(dest: Path) -> None:
    """The checkout's tracked and untracked-but-not-ignored files (uncommitted edits included)."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for raw in names:
        if not raw:
            continue
        name = raw.decode()
        src = ROOT / name
        if not src.is_file() or src.is_symlink():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    for venv in (".venv", ".venv-floor", ".venv-ha"):
        if (ROOT / venv).exists():
            (dest / venv).symlink_to((ROOT / venv).resolve())


def apply(brk: Break, dest: Path) -> None:
    path = dest / brk.path
    text = path.read_text(encoding="utf-8")
    count = text.count(brk.old)
    if count != 1:
        raise SystemExit(f"{brk.id}: the text to break occurs {count} times in {brk.path} (want 1)")
    path.write_text(text.replace(brk.old, brk.new), encoding="utf-8")


def line_of(brk: Break) -> int:
    text = (ROOT / brk.path).read_text(encoding="utf-8")
    return text[: text.index(brk.old)].count("\n") + 1


# A test's cases by what they say about a break, least to most: a case that failed in its own body saw the
# break; one that errored (in a fixture's set-up or tear-down) did not get as far as its assertions, so it
# caught nothing, and a break whose tests only error is reported "not caught".
_RANK = {"passed": 0, "skipped": 1, "error": 2, "failed": 3}


def outcomes_of(report: Path) -> dict[str, str]:
    """Each test's outcome in a JUnit report, its parametrized cases together: "failed" when a case failed
    in its body, else "error" when one errored outside it, else "skipped" or "passed"."""
    outcomes: dict[str, str] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        name = case.get("name", "").split("[")[0]
        if case.find("failure") is not None:
            outcome = "failed"
        elif case.find("error") is not None:
            outcome = "error"
        else:
            outcome = "skipped" if case.find("skipped") is not None else "passed"
        if _RANK[outcome] >= _RANK[outcomes.get(name, "passed")]:
            outcomes[name] = outcome
    return outcomes


def caught(outcomes: dict[str, str], clean: bool = False) -> bool:
    """A break is caught when every test it names failed under it (with --clean: passed without it)."""
    want = "passed" if clean else "failed"
    return bool(outcomes) and all(outcome == want for outcome in outcomes.values())


def run(brk: Break, clean: bool) -> tuple[dict[str, str], float, str]:
    """Each named test's outcome ("failed" when any of its cases failed), the seconds, the first assertion."""
    with tempfile.TemporaryDirectory(prefix=f"break-{brk.id}-") as tmp:
        dest = Path(tmp)
        scratch_copy(dest)
        if not clean:
            apply(brk, dest)
        env = {**os.environ, "PYTHONPATH": str(dest)}
        report = dest / "junit.xml"
        started = time.monotonic()
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
        try:
            result = subprocess.run(
                [*command, *brk.tests], cwd=dest, env=env, capture_output=True, text=True, timeout=brk.timeout
            )
        except subprocess.TimeoutExpired:
            return {"(all)": "timeout"}, time.monotonic() - started, ""
        elapsed = time.monotonic() - started
        out = result.stdout + result.stderr
        outcomes = outcomes_of(report) if report.is_file() else {}
        if not outcomes:
            outcomes["(all)"] = f"error (pytest exit {result.returncode})"
        # The first assertion line, so a failure for the wrong reason shows.
        # (Not pytest's progress line, which starts with "E" when the first test errored.)
        lines = [ln.strip() for ln in out.splitlines() if ln.startswith("E ") and not ln.endswith("%]")]
        why = next(iter(lines), "")
        return outcomes, elapsed, why[:200]


def main(argv: list[str]) -> int:
    clean = "--clean" in argv
    ids = [a for a in argv if not a.startswith("--")]
    unknown = set(ids) - {b.id for b in BREAKS}
    if unknown:
        raise SystemExit(f"unknown break(s): {', '.join(sorted(unknown))}")
    chosen = [b for b in BREAKS if not ids or b.id in ids]
    if "--list" in argv:
        for b in chosen:
            print(f"{b.id}: {b.path}:{line_of(b)} {b.what}\n    {' '.join(b.tests)}")
        return 0
    bad = 0
    rows = []
    for b in chosen:
        outcomes, seconds, why = run(b, clean)
        ok = caught(outcomes, clean)
        bad += not ok
        results = ", ".join(f"{name} {o}" for name, o in outcomes.items())
        rows.append(f"| {b.id} | {b.path}:{line_of(b)} {b.what} | {results} | {why} |")
        print(f"{'ok ' if ok else 'BAD'} {b.id} ({seconds:.0f} s): {results}\n    {why}", flush=True)
    print("\n| break | where, what | each test: result | first assertion |\n|---|---|---|---|")
    print("\n".join(rows))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
