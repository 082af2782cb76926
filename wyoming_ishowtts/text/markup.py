"""Markup -> plain text: Markdown and HTML from LLM agents, links, web and e-mail addresses.

Conversation agents write Markdown although they are told not to, and Home Assistant passes it on to the
TTS as it is. What each construct becomes, within one sentence (blocks.py has already left out reasoning
blocks and fenced code; sentences.py has cut at line ends, so a heading or a list item is a sentence):

- a heading, list item, quote or table row: its text, with a sentence end if it has none; a table's cells
  are joined by commas and its separator row is left out, as is a horizontal rule;
- emphasis, strike-through and code-span marks: removed, their text kept (a code span is read);
- a link: its text; an image: left out; a bare web address: its site's name ("example dot com");
  an e-mail address: read out ("anna at example dot com");
- HTML: tags removed, entities decoded (``&amp;`` is then read as "and" by symbols.py).
"""

from __future__ import annotations

import html
import re

_LINE_MARKER = re.compile(r"^\s*(?:(?:#{1,6}|[-*+•‣◦]|\d{1,3}[.)]|>)\s+|>)+(?:\[[ xX]\]\s+)?")
_RULE = re.compile(r"^\s*(?:[-*_=]\s*){3,}$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_IMAGE = re.compile(r"!\[[^\]\n]{0,500}\]\([^)\n]{0,2000}\)")
_LINK = re.compile(r"\[(?P<text>[^\]\n]{1,500})\](?:\([^)\n]{0,2000}\)|\[[^\]\n]{0,100}\])")
_AUTOLINK = re.compile(r"<(?P<url>(?:https?|ftp)://[^>\s]{1,2000}|[\w.+-]{1,100}@[\w.-]{1,200})>")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]{0,30}(?:\s[^<>]{0,500})?/?>|<!--.{0,2000}?-->")
_CODE_SPAN = re.compile(r"`{1,3}(?P<code>[^`\n]{1,500})`{1,3}")
_URL = re.compile(
    r"\b(?:(?:https?|ftp)://|www\.)(?P<host>[A-Za-z0-9.-]{1,253})(?::\d{1,5})?(?:[/?#][^\s<>\"'\])]{0,2000})?"
)
_TLDS = (
    "com|org|net|io|dev|ai|app|co|uk|de|fr|nl|es|it|cn|jp|gov|edu|info|me|tv|ly|us|ca|au|ch|se|no|dk|fi|"
    "pl|be|at|eu|xyz|site|online|local|home|lan|arpa"
)
_DOMAIN = re.compile(rf"(?<![\w@.-])(?P<host>(?:[A-Za-z0-9-]{{1,63}}\.){{1,6}}(?:{_TLDS}))(?![\w-]|\.\w)")
_EMAIL = re.compile(
    r"(?<![\w.+-])(?P<user>[\w.+-]{1,64})@(?P<host>[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,6})\b"
)
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "gov", "ac", "edu"})


def site_name(host: str, dot: str) -> str:
    """www.example.co.uk -> 'example dot co dot uk': the registrable name, without the subdomains."""
    labels = [label for label in host.lower().strip(".").split(".") if label]
    if all(label.isdigit() for label in labels):  # an IP address: all of it
        return f" {dot} ".join(labels)
    if labels and labels[0] == "www":
        labels = labels[1:]
    keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2 else 2
    return f" {dot} ".join(label.replace("-", " ") for label in labels[-keep:])


def _trailing_marks(url: str) -> str:
    """The sentence's own marks that an address swallowed ("see example.com/a." ends with a full stop)."""
    return url[len(url.rstrip(".,;:!?")) :]


def _email(user: str, host: str, at: str, dot: str) -> str:
    spoken_user = re.sub(r"[._+-]+", " ", user).strip()
    return f" {spoken_user} {at} {f' {dot} '.join(host.lower().split('.'))} "


def line_structure(sentence: str) -> tuple[str, bool]:
    """Remove a heading, list, quote or table marker at the start; True when the line was one of them
    (it then ends with a sentence end, spoken as a pause)."""
    if _RULE.match(sentence) or _TABLE_SEPARATOR.match(sentence):
        return "", False
    stripped = sentence.strip()
    if stripped.count("|") >= 2 and (stripped.startswith("|") or stripped.endswith("|")):
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        return ", ".join(cell for cell in cells if cell), True
    without = _LINE_MARKER.sub("", sentence, count=1)
    return without, without != sentence


def plain(sentence: str, at: str, dot: str) -> str:
    """Inline Markdown and HTML removed, addresses made speakable."""
    text = _IMAGE.sub(" ", sentence)
    text = _LINK.sub(lambda m: m["text"], text)
    text = _AUTOLINK.sub(lambda m: " " + m["url"] + " ", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _CODE_SPAN.sub(lambda m: m["code"], text)
    text = _EMAIL.sub(lambda m: _email(m["user"], m["host"], at, dot), text)
    text = _URL.sub(lambda m: " " + site_name(m["host"], dot) + _trailing_marks(m.group()) + " ", text)
    text = _DOMAIN.sub(lambda m: " " + site_name(m["host"], dot) + " ", text)
    # Emphasis and strike-through: drop the marks, keep the words ("snake_case" keeps a space).
    text = re.sub(r"(?<=[^\W_])_(?=[^\W_])", " ", text)
    return re.sub(r"[*_~`]+", " ", text)
