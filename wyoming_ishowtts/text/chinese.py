"""How Mandarin says what rules.py finds: 二十一点五摄氏度, 百分之四十五, 下午三点四十五分, 二零二六年十二月七日.

A number stays next to the characters around it without spaces (the tokenizer reads each character as its
pinyin). Below zero a temperature is 零下 (零下二摄氏度); a ratio unit goes before its number (百分之四十五).
"""

from __future__ import annotations

from . import chinese_numbers as num
from .units import Currency, Unit

WORDS = {
    "and": "和",
    "plus": "加",
    "equals": "等于",
    "at": "艾特",
    "dot": "点",
    "times": "乘以",
    "divided by": "除以",
    "or": "或",
    "number": "第",
    "less than": "小于",
    "greater than": "大于",
    "about": "大约",
    "squared": "的平方",
    "cubed": "的立方",
    "degrees": "度",
    "percent": "百分比",
    "version": "版本",
    "to": "到",
    "per": "每",
}

# A ratio's name when no number follows it.
_RATIO_NAMES = {"百分之": "百分比", "百万分之": "百万分率", "十亿分之": "十亿分率"}
_TEMPERATURES = {"摄氏度", "华氏度", "度"}

# Before these measure words the number two is 两: 两个, 下午两点, 两年, 两小时 (but 十二点, 二零二六年).
MEASURE_WORDS = (
    "个",
    "位",
    "只",
    "件",
    "次",
    "点",
    "天",
    "年",
    "岁",
    "周",
    "条",
    "张",
    "台",
    "本",
    "杯",
    "盏",
    "家",
    "辆",
    "小时",
    "分钟",
    "秒钟",
    "公里",
    "千米",
    "种",
    "套",
    "双",
    "层",
    "间",
    "部",
)
TWO = "两"


def counted(value: str, following: str) -> str:
    """二 -> 两 before a measure word."""
    return TWO if value == "二" and following.startswith(MEASURE_WORDS) else value


def number(integer: str, fraction: str | None, negative: bool) -> str:
    return num.decimal(integer, fraction, negative)


def integer(value: int) -> str:
    return num.cardinal(value)


def digits(text: str) -> str:
    return num.digits(text)


def ordinal(value: int) -> str:
    return "第" + num.cardinal(value)


def year(value: int) -> str:
    return num.digits(str(value)) + "年"


def decade(value: int) -> str:
    return num.digits(str(value)) + "年代"


def time(hour: int, minute: int, second: int | None, meridiem: str | None) -> str:
    """(14, 5) -> 十四点零五分; (3, 45, 'P') -> 下午三点四十五分."""
    prefix = {"A": "上午", "P": "下午"}.get((meridiem or "").upper(), "")
    words = prefix + (TWO if hour == 2 else num.cardinal(hour)) + "点"
    if minute:
        words += ("零" if minute < 10 else "") + num.cardinal(minute) + "分"
    if second:
        words += num.cardinal(second) + "秒"
    return words


def date(year_value: int | None, month: int | None, day: int | None) -> str:
    words = ""
    if year_value is not None:
        words += num.digits(str(year_value)) + "年"
    if month is not None:
        words += num.cardinal(month) + "月"
    if day is not None:
        words += num.cardinal(day) + "日"
    return words


def unit(value: str, name: Unit, singular: bool, negative_temperature: bool) -> str:
    del singular
    if name.chinese_before:
        return name.chinese + value
    if negative_temperature and name.chinese in _TEMPERATURES:
        return "零下" + value.removeprefix("负") + name.chinese
    return counted(value, name.chinese) + name.chinese


def unit_alone(name: Unit) -> str:
    return _RATIO_NAMES.get(name.chinese, name.chinese)


def value_range(low: str, high: str) -> str:
    return f"{low}到{high}"


def money(whole: int, fraction: str | None, currency: Currency, negative: bool, scale: str | None) -> str:
    scale_words = {"thousand": "千", "million": "百万", "billion": "十亿", "trillion": "万亿"}
    amount = num.decimal(str(whole), (fraction or "").rstrip("0") or None, negative)
    return amount + (scale_words.get(scale, "") if scale else "") + currency.chinese


def fraction(numerator: int, denominator: int) -> str:
    return f"{num.cardinal(denominator)}分之{num.cardinal(numerator)}"


def dotted(parts: list[str], word: str) -> str:
    del word
    return "点".join(num.digits(part) for part in parts)


def percent(value: str) -> str:
    return "百分之" + value


def sentence_end() -> str:
    return "。"
