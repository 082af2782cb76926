"""Tokenizer equivalence with upstream F5-TTS (convert_char_to_pinyin, get_tokenizer, list_str_to_idx)."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import rjieba
from pypinyin import Style, lazy_pinyin

from wyoming_ishowtts.engine import tokenizer
from wyoming_ishowtts.engine.tokenizer import Vocab, contains_cjk, segment_non_cjk, text_to_tokens
from wyoming_ishowtts.errors import MissingExtraError, ModelLoadError

# Tests marked `upstream` compare with upstream f5-tts (the reference extra). The floor environment cannot
# install it (it needs a newer torch) and deselects them; the rest of this module runs there too.
upstream = pytest.mark.upstream


def f5_utils() -> Any:
    """Upstream's tokenizer functions (convert_char_to_pinyin, get_tokenizer, list_str_to_idx)."""
    from f5_tts.model import utils

    return utils


ENTRIES = [" ", "!", ",", ".", "a", "b", "c", "H", "e", "l", "o", "ni2", "hao3", "zhong1", "wen2", "\u00e9"]

ENGLISH = [
    "Hello, world!",
    "Hello,world",
    "Hello,world.How are you?",
    "I don't know; maybe you're right.",
    "It's 3.5 degrees, i.e. 38.3 Fahrenheit.",
    "Prices rose 50% and then 3.5% (roughly).",
    "Visit http://www.example.com/a_b?x=1&y=2 now.",
    "Email me at first.last@example.co.uk, please.",
    "C++ and C# are languages; AT&T is a company, at&t is not.",
    "abc#12 and c++11 and xAT&Tx",
    "A well-known state-of-the-art co-op -- or not.",
    "e.g. U.S.A. and Mr.Smith went to Washington...",
    "Numbers: 1, 22, 333, 4,444, 55.5, 1-2-3, 9-5.",
    "The __init__ method, x_y_z, and a--b.",
    "Tab\tseparated\tvalues and  double  spaces.",
    "Line one\nLine two\r\nLine three",
    '"Quoted," she said, \u201ccurly quoted\u201d and \u2018single\u2019.',
    "It\u2019s the dog\u2019s bone.",
    "Wait\u2026 what\u2014really?",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "$100.00 or \u20ac50, your choice!",
    "(parentheses) [brackets] {braces} <angles>",
    "Time 12:30pm; date 2024-01-05; version v1.2.3.",
    "100%-200% or 3%% or x%y",
    "a+b=c, a++b, +1, -1, #1, &amp;",
    "Ok.",
    "x",
    "...",
    "--",
    "Turn on the living room lights at 7 p.m., please!",
    "What's the weather like in New York City today?",
    "Set a timer for 10 minutes.",
    "Home Assistant: the kitchen temperature is 21.5\u00b0C.",
    "Emoji \U0001f600 here and \u2603 snowman.",
    "\u3053\u3093\u306b\u3061\u306f and \ud55c\uad6d\uc5b4 text",
    "Sem\u00e1foro, ma\u00f1ana, \u00bfqu\u00e9 tal?",
]

CHINESE = [
    "你好，世界。",
    "我们中出了一个叛徒",
    "今天天气很好，我们去公园玩吧！",
    "Hello 你好 world",
    "这是F5-TTS的测试：3.5%的人喜欢它；“引号”也可以。",
    "一个人，不要，一样",
    "他说：“我爱北京天安门”。",
    "A股和B超都是词。",
    "〇和中文混合 abc 123",
]


def write_vocab(path: Path, entries: list[str], newline: str) -> Path:
    path.write_bytes("".join(e + newline for e in entries).encode("utf-8"))
    return path


@upstream
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_vocab_matches_upstream_reader(tmp_path: Path, newline: str) -> None:
    path = write_vocab(tmp_path / "vocab.txt", ENTRIES, newline)
    vocab = Vocab.from_file(path)
    assert vocab.tokens == tuple(ENTRIES)
    assert vocab.size == len(ENTRIES)
    assert vocab.ids[" "] == 0
    upstream_map, upstream_size = f5_utils().get_tokenizer(str(path), "custom")
    assert vocab.ids == upstream_map
    assert vocab.size == upstream_size


@upstream
def test_encode_unknown_is_zero_like_upstream(tmp_path: Path) -> None:
    vocab = Vocab.from_file(write_vocab(tmp_path / "v.txt", ENTRIES, "\r\n"))
    tokens = ["H", "e", "l", "l", "o", " ", "ni2", "?", "xyz", "\u00e9", "zhong1"]
    ids = vocab.encode(tokens)
    assert ids == [7, 8, 9, 9, 10, 0, 11, 0, 0, 15, 13]
    assert ids == f5_utils().list_str_to_idx([tokens], vocab.ids)[0].tolist()


def test_vocab_without_final_newline_keeps_last_entry(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_bytes(b" \r\na\r\nbc")
    assert Vocab.from_file(path).tokens == (" ", "a", "bc")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"a\nb\n", "single space"),
        (b" \na\na\n", "twice"),
        (b" \n\xff\xfe\n", "UTF-8"),
    ],
)
def test_vocab_invalid(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "v.txt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        Vocab.from_file(path)


def test_vocab_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        Vocab.from_file(tmp_path / "nope.txt")


@upstream
def test_packaged_vocab_both_line_endings(tmp_path: Path) -> None:
    from importlib.resources import files

    packaged = Path(str(files("f5_tts").joinpath("infer/examples/vocab.txt")))
    lf = Vocab.from_file(packaged)
    crlf_path = tmp_path / "crlf.txt"
    crlf_path.write_bytes(packaged.read_bytes().replace(b"\n", b"\r\n"))
    crlf = Vocab.from_file(crlf_path)
    assert lf.size == crlf.size == 2545
    assert lf.tokens == crlf.tokens
    assert lf.tokens[0] == " "


@upstream
@pytest.mark.parametrize("text", ENGLISH + CHINESE)
def test_tokens_equal_upstream(text: str) -> None:
    assert text_to_tokens(text) == f5_utils().convert_char_to_pinyin([text])[0]


@pytest.mark.parametrize("text", ENGLISH)
def test_builtin_segmenter_equals_rjieba(text: str) -> None:
    fixed = text.translate(tokenizer._CHAR_FIXES)
    assert segment_non_cjk(fixed) == rjieba.cut(fixed)


def test_builtin_segmenter_random_differential() -> None:
    rng = random.Random(1234)
    alphabets = [
        "cCtTaA&#+1",
        "abc123._-%",
        "xyzXYZ0189+#&._%-",
        "ab1 .-_%\t\r\n,'()",
        "hello world, it's 3.5% e-mail AT&T C++ c# x_y.\u2026\u00e9",
    ]
    reached: set[str] = set()
    for alphabet in alphabets:
        for _ in range(4000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
            expected = rjieba.cut(text)
            assert segment_non_cjk(text) == expected, text
            reached |= _rules_reached(expected)
    # The random texts reach every rule of the segmenter, so agreeing on them means something.
    assert reached == {*tokenizer._DICT_WORDS, "joined run", "percent run", "\r\n"}, reached


def _rules_reached(segments: list[str]) -> set[str]:
    """Which of the segmenter's rules rjieba's segments show: a dictionary word, alphanumerics joined by
    '.', '_' or '-', a run ending in '%', a "\r\n" kept whole."""
    reached = {s for s in segments if s in tokenizer._DICT_WORDS or s == "\r\n"}
    for segment in segments:
        if re.fullmatch(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)+%?", segment):
            reached.add("joined run")
        if re.fullmatch(r"[A-Za-z0-9._-]*[A-Za-z0-9]%", segment):
            reached.add("percent run")
    return reached


def hide_modules(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make `import name` raise ImportError, as if the package were not installed."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


@upstream
@pytest.mark.parametrize("text", ENGLISH)
def test_english_without_zh_extra_equals_upstream(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    expected = f5_utils().convert_char_to_pinyin([text])[0]
    hide_modules(monkeypatch, "rjieba", "pypinyin")
    with pytest.raises(ImportError):
        import rjieba  # noqa: F401
    assert text_to_tokens(text) == expected


@pytest.mark.parametrize("missing", ["rjieba", "pypinyin"])
def test_chinese_without_zh_extra_raises(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    hide_modules(monkeypatch, missing)
    with pytest.raises(MissingExtraError, match=r"zh extra: pip install 'wyoming-ishowtts\[zh\]'"):
        text_to_tokens("Hello 你好")


def test_contains_cjk_covers_every_character_pypinyin_changes() -> None:
    """Outside contains_cjk's ranges pypinyin must return a character unchanged (our no-extra path)."""
    changed_outside = []
    for code in range(0x80, 0x30000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        if contains_cjk(char):
            continue
        if lazy_pinyin(char, style=Style.TONE3, tone_sandhi=True) != [char]:
            changed_outside.append(hex(code))
    assert changed_outside == []
    assert contains_cjk("中") and contains_cjk("〇") and not contains_cjk("caf\u00e9 \u2026 \u3053")
