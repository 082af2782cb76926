"""Chunking, duration and cross-fade equivalence with upstream F5-TTS 1.1.22."""

from __future__ import annotations

import random

import numpy as np
import pytest

from wyoming_ishowtts.engine.chunking import (
    CROSS_FADE_SAMPLES,
    CrossFader,
    chunk_text,
    estimate_total_frames,
    max_chars_for,
    model_ref_text,
    shorten_first_chunk,
)

# Tests marked `upstream` compare with upstream f5-tts (the reference extra). The floor environment cannot
# install it (it needs a newer torch) and deselects them; the rest of this module runs there too.
upstream = pytest.mark.upstream


def upstream_chunk_text(text: str, max_chars: int) -> list[str]:
    from f5_tts.infer.utils_infer import chunk_text

    return list(chunk_text(text, max_chars))


LONG = (
    "The quick brown fox jumps over the lazy dog, while the cat watches from the windowsill; "
    "meanwhile, in the kitchen, the kettle begins to whistle. Nobody notices: the radio is too loud! "
    "Would anyone turn it down? Perhaps not. "
    "Supercalifragilisticexpialidociousandthensomewithoutanypunctuationatallgoingonandonforeverandever "
    "and a final clause, with commas, semicolons; colons: and so on."
)

TEXTS = [
    "",
    "Hello.",
    "Hello world",
    "Hello, world! How are you? I'm fine; thanks: bye.",
    "No punctuation at all just a long run of words that keeps going and going without any stop whatsoever",
    LONG,
    "Multiple   spaces,   after commas.   And periods.\nNew lines!\tTabs?",
    "你好，世界。今天天气很好！我们去公园玩吧？好的；走吧：出发。",
    "Mixed 中文 and English, 混合文本。Then English again. 然后中文，结束。",
    "Decimal 3.5 and 1,000 people... ellipsis. U.S.A. e.g. this.",
    "Trailing space after punctuation. ",
    "Ends with CJK，",
    "A sentence that is much longer than the budget, definitely longer than it, "
    "and then short. Tiny. Bits. Here.",
]


@upstream
@pytest.mark.parametrize("max_chars", [1, 10, 25, 50, 80, 135, 300])
@pytest.mark.parametrize("text", TEXTS)
def test_chunk_text_equals_upstream(text: str, max_chars: int) -> None:
    assert chunk_text(text, max_chars) == upstream_chunk_text(text, max_chars)


@upstream
def test_chunk_text_random_equals_upstream() -> None:
    rng = random.Random(7)
    words = [
        "alpha",
        "beta,",
        "gamma.",
        "delta!",
        "eps?",
        "zeta;",
        "eta:",
        "中文",
        "你好，",
        "世界。",
        "3.5",
        "x",
    ]
    for _ in range(2000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        budget = rng.randint(1, 200)
        assert chunk_text(text, budget) == upstream_chunk_text(text, budget)


def test_max_chars_formula() -> None:
    ref = "Some reference words here. "
    assert max_chars_for(ref, 5.0, 1.0) == int(len(ref.encode()) / 5.0 * 17.0 * 1.0)
    assert max_chars_for(ref, 5.0, 1.0) == 91
    assert max_chars_for("你好。", 2.0, 1.0) == int(9 / 2.0 * 20.0)
    assert max_chars_for(ref, 5.0, 0.8) == int(27 / 5.0 * 17.0 * 0.8)


def test_model_ref_text_extra_space() -> None:
    assert model_ref_text("Hello there. ") == "Hello there.  "
    assert model_ref_text("你好。") == "你好。"
    assert model_ref_text("Hi.") == "Hi. "


def test_estimate_total_frames_matches_upstream_formula() -> None:
    ref_text = model_ref_text("Reference transcript. ")
    ref_frames = 24000 * 6 // 256
    gen = "This is the text to speak."
    expected = ref_frames + int(ref_frames / len(ref_text.encode()) * len(gen.encode()) / 1.0)
    assert estimate_total_frames(ref_frames, ref_text, gen, 1.0) == expected
    assert estimate_total_frames(ref_frames, ref_text, gen, 1.5) == ref_frames + int(
        ref_frames / len(ref_text.encode()) * len(gen.encode()) / 1.5
    )
    # Under 10 UTF-8 bytes upstream uses speed 0.3 whatever speed was asked for.
    short = "Hi there"
    assert len(short.encode()) < 10
    slow = ref_frames + int(ref_frames / len(ref_text.encode()) * len(short.encode()) / 0.3)
    assert estimate_total_frames(ref_frames, ref_text, short, 1.0) == slow
    assert estimate_total_frames(ref_frames, ref_text, short, 2.0) == slow
    # Byte counts, not characters: 4 CJK characters are 12 bytes, so no slow-down.
    assert estimate_total_frames(ref_frames, ref_text, "你好世界", 1.0) == ref_frames + int(
        ref_frames / len(ref_text.encode()) * 12 / 1.0
    )


# --------------------------------------------------------------------------- first chunk


def test_shorten_first_chunk_at_clause() -> None:
    chunks = chunk_text(LONG, 200)
    out = shorten_first_chunk(chunks, 60)
    assert out[0] == "The quick brown fox jumps over the lazy dog,"
    assert len(out[0].encode()) <= 60
    assert " ".join(out) == " ".join(chunks)


def test_shorten_first_chunk_falls_back_to_word_gap() -> None:
    chunks = ["one two three four five six seven eight nine ten eleven twelve"]
    out = shorten_first_chunk(chunks, 20)
    assert out == ["one two three four", "five six seven eight nine ten eleven twelve"]


def test_shorten_first_chunk_leaves_short_or_unsplittable_alone() -> None:
    assert shorten_first_chunk(["Short one.", "Second."], 40) == ["Short one.", "Second."]
    word = "Supercalifragilisticexpialidocious" * 3
    assert shorten_first_chunk([word], 20) == [word]
    assert shorten_first_chunk([], 20) == []


def test_shorten_first_chunk_cjk() -> None:
    out = shorten_first_chunk(["今天天气很好，我们去公园玩吧！好的走吧"], 30)
    assert out == ["今天天气很好，", "我们去公园玩吧！好的走吧"]


def test_shorten_first_chunk_rechunks_with_max_chars() -> None:
    chunks = chunk_text(LONG, 400)
    out = shorten_first_chunk(chunks, 50, max_chars=100)
    assert len(out[0].encode()) <= 50
    tail = chunks[0][len(out[0]) :].strip()
    assert out[1:] == chunk_text(tail, 100) + chunks[1:]
    assert len(out) > 2  # the remainder really was re-packed into several chunks
    assert " ".join(out).split() == " ".join(chunks).split()


def test_shorten_first_chunk_properties() -> None:
    rng = random.Random(3)
    words = ["alpha", "beta,", "gamma.", "delta!", "epsilon?", "zeta;", "eta:", "theta", "iota", "kappa"]
    for _ in range(500):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))
        chunks = chunk_text(text, 150)
        limit = rng.randint(10, 80)
        out = shorten_first_chunk(chunks, limit)
        # Deterministic, and nothing lost, added or cut inside a word.
        assert out == shorten_first_chunk(chunks, limit)
        assert " ".join(out).split() == " ".join(chunks).split()
        first = chunks[0]
        if out != chunks:
            head, rest = out[0], out[1]
            assert len(out) == len(chunks) + 1
            assert len(head.split()) >= 2 and len(head.encode()) >= 10
            assert len(rest.split()) >= 3 and len(rest.encode()) >= 20  # never a scrap left over
            if len(head.encode()) > limit:  # a whole clause, up to twice the limit
                assert head[-1] in ",;:.!?" and len(head.encode()) <= 2 * limit
            elif head[-1] not in ",;:.!?":  # a cut between words: only in text over twice the limit
                assert len(first.encode()) > 2 * limit
        elif len(first.encode()) > limit:
            # Unchanged only when no cut leaves a head and a rest that are both acceptable.
            words_0 = first.split()
            for k in range(2, len(words_0) - 2):
                head, rest = " ".join(words_0[:k]), " ".join(words_0[k:])
                clause = head[-1] in ",;:.!?"
                fits = 10 <= len(head.encode()) <= (2 * limit if clause else limit)
                allowed = clause or len(first.encode()) > 2 * limit
                assert not (fits and allowed and len(rest.encode()) >= 20), (first, limit, head)


# --------------------------------------------------------------------------- cross-fade


def upstream_join(waves: list[np.ndarray], fade: int = CROSS_FADE_SAMPLES) -> np.ndarray:
    """Direct re-statement of upstream's non-streaming join (infer_batch_process)."""
    final = waves[0]
    for nxt in waves[1:]:
        n = min(fade, len(final), len(nxt))
        if n <= 0:
            final = np.concatenate([final, nxt])
            continue
        overlap = final[-n:] * np.linspace(1, 0, n) + nxt[:n] * np.linspace(0, 1, n)
        final = np.concatenate([final[:-n], overlap, nxt[n:]])
    return final


@pytest.mark.parametrize("seed", range(40))
def test_crossfader_equals_join(seed: int) -> None:
    rng = np.random.default_rng(seed)
    choices = [0, 1, 5, 100, 3599, 3600, 3601, 5000, 7200, 24000]
    count = int(rng.integers(1, 7))
    waves = [
        rng.standard_normal(
            int(rng.choice(choices) if rng.random() < 0.6 else rng.integers(0, 30000))
        ).astype(np.float32)
        for _ in range(count)
    ]
    fader = CrossFader()
    parts = [fader.push(w) for w in waves]
    parts.append(fader.flush())
    got = np.concatenate(parts)
    expected = upstream_join(waves)
    assert got.dtype == np.float32
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=0, atol=1e-6)
    # Each push emits everything joined so far but the held-back tail, which is at most one fade long.
    emitted = np.cumsum([len(p) for p in parts[:-1]])
    for i, total in enumerate(emitted):
        joined = len(upstream_join(waves[: i + 1]))
        assert total == joined - min(CROSS_FADE_SAMPLES, joined), (i, total, joined)


def test_crossfader_holds_back_only_the_fade() -> None:
    fader = CrossFader()
    first = fader.push(np.ones(10000, dtype=np.float32))
    assert len(first) == 10000 - CROSS_FADE_SAMPLES
    second = fader.push(np.zeros(10000, dtype=np.float32))
    # The held 3600 samples are blended with the new piece's first 3600; its last 3600 wait.
    assert len(second) == 10000 - CROSS_FADE_SAMPLES
    # The overlap fades from 1 to 0 linearly.
    np.testing.assert_allclose(second[:CROSS_FADE_SAMPLES], np.linspace(1, 0, CROSS_FADE_SAMPLES), atol=1e-7)
    assert len(fader.flush()) == CROSS_FADE_SAMPLES
    assert len(fader.flush()) == 0
