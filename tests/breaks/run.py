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
HANDLER = "wyoming_ishowtts/server/handler.py"
WORKER = "wyoming_ishowtts/server/worker.py"
CORE = "wyoming_ishowtts/engine/core.py"
AUDIO_CACHE = "wyoming_ishowtts/server/audio_cache.py"
AC = "tests/test_audio_cache.py::"
SP = "tests/test_server_protocol.py::"
GC = "tests/test_gpu_check.py::"
TT = "tests/test_text.py::"

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
        "            for sentence in await asyncio.to_thread(stream.speech.finish):\n",
        "            for sentence in (await asyncio.to_thread(stream.speech.finish))[:0]:\n",
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
        "        worker.cancel_client(self.client_id)\n        for request in list(self._open):\n"
        "            worker.finish_request(request)\n        self._open.clear()\n"
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
        CORE,
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
        CORE,
        "                        pad_to=self.bucket,\n                        step=self.steps or guided_step,",
        "                        pad_to=1,\n                        step=self.steps or guided_step,",
        [
            "tests/test_engine_options.py::test_length_buckets_give_the_same_audio",
            "tests/test_engine_options.py::test_warm_up_compiles_every_length_bucket",
        ],
    ),
    Break(
        "warm-up-one-bucket",
        "the warm-up records only the first length bucket",
        CORE,
        "                    for n in lengths:\n",
        "                    for n in lengths[:1]:\n",
        ["tests/test_engine_options.py::test_warm_up_compiles_every_length_bucket"],
    ),
    Break(
        "auto-cpu-always-fp32",
        '"auto" on a CPU is fp32 even with native bf16',
        "wyoming_ishowtts/engine/loading.py",
        "return torch.bfloat16 if cpu_has_native_bf16() else torch.float32",
        "return torch.float32",
        ["tests/test_engine_options.py::test_auto_precision_follows_the_hardware"],
    ),
    Break(
        "auto-cuda-fp16-on-pascal",
        '"auto" gives fp16 on a CUDA capability 6 GPU',
        "wyoming_ishowtts/engine/loading.py",
        "return torch.float16 if major >= 7 else torch.float32",
        "return torch.float16 if major >= 6 else torch.float32",
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
        outcomes: dict[str, str] = {}
        if report.is_file():
            for case in ElementTree.parse(report).iter("testcase"):
                name = case.get("name", "").split("[")[0]
                bad = case.find("failure") is not None or case.find("error") is not None
                skipped = case.find("skipped") is not None
                if bad:
                    outcomes[name] = "failed"
                elif name not in outcomes:
                    outcomes[name] = "skipped" if skipped else "passed"
        if not outcomes:
            outcomes["(all)"] = f"error (pytest exit {result.returncode})"
        # The first assertion line, so a failure for the wrong reason shows.
        why = next((ln.strip() for ln in out.splitlines() if ln.startswith("E ")), "")
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
        want = "passed" if clean else "failed"
        ok = bool(outcomes) and all(o == want for o in outcomes.values())
        bad += not ok
        results = ", ".join(f"{name} {o}" for name, o in outcomes.items())
        rows.append(f"| {b.id} | {b.path}:{line_of(b)} {b.what} | {results} | {why} |")
        print(f"{'ok ' if ok else 'BAD'} {b.id} ({seconds:.0f} s): {results}\n    {why}", flush=True)
    print("\n| break | where, what | each test: result | first assertion |\n|---|---|---|---|")
    print("\n".join(rows))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
