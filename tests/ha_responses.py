"""Home Assistant's real response templates, rendered with realistic states: the corpus of what a satellite
asks this server to say.

The templates come from the ``home-assistant-intents`` package (a pinned dev dependency), the same data Home
Assistant's default conversation agent renders: ``responses.intents[intent][key]`` and
``responses.errors[key]`` in ``data/<language>.json``. Home Assistant renders them with Jinja2 and the
variables ``slots`` (the recognized slot values), ``state`` (the first matched entity, with ``state``,
``state_with_unit`` = ``f"{state} {unit}"``, ``attributes``, ``domain``, ``name``), ``query`` (``matched``
and ``unmatched`` states) and, for errors, ``entity``, ``area``, ``floor``, ``domain``, ``device_class`` and
``state``; it then collapses whitespace. This module does the same with its own minimal objects.

Every template is tried with the scenarios written for its intent and response key (sensor values with Home
Assistant's unit symbols, times, dates, timers, counts, percentages), or else with a few generic ones (names
of areas, floors, devices and items). A template that renders to nothing with all of them (an empty response,
a variable no scenario gives) is skipped and counted; ``test_text_corpus`` requires most of them to render.
The expected spoken forms are written out by hand here, following the conventions the front end promises
(issue 20); they are never computed, so the corpus cannot agree with a wrong front end by construction.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import home_assistant_intents
import jinja2
from corpus_case import Case
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The front end's language code -> the package's file for it.
PACKAGE_LANGUAGES = {"en": "en", "zh": "zh-CN"}


# -- Home Assistant's objects, as the templates see them ----------------------------------------------------


@dataclass(frozen=True)
class State:
    """What a template reads of an entity's state (Home Assistant's TemplateState, reduced to its fields)."""

    entity_id: str
    name: str
    state: str  # as Home Assistant hands it over: a sensor's rounded value, or the translated state word
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]

    @property
    def object_id(self) -> str:
        return self.entity_id.split(".", 1)[1]

    @property
    def state_with_unit(self) -> str:
        unit = self.attributes.get("unit_of_measurement")
        return f"{self.state} {unit}" if unit else self.state


@dataclass(frozen=True)
class Timer:
    """The fields of Home Assistant's timer info that the timer-status templates read."""

    is_active: bool
    total_seconds_left: int
    start_hours: int = 0
    start_minutes: int = 0
    start_seconds: int = 0
    name: str | None = None
    area: str | None = None

    @property
    def rounded_hours_left(self) -> int:
        return self.total_seconds_left // 3600

    @property
    def rounded_minutes_left(self) -> int:
        return self.total_seconds_left % 3600 // 60

    @property
    def rounded_seconds_left(self) -> int:
        return self.total_seconds_left % 60


@dataclass(frozen=True)
class Scenario:
    """One set of template variables, the values in the text it renders, and their spoken form."""

    label: str
    variables: dict[str, Any]
    raw: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()


def query(matched: Iterable[State] = (), unmatched: Iterable[State] = ()) -> dict[str, list[State]]:
    return {"matched": list(matched), "unmatched": list(unmatched)}


def answer(label: str, state: State | None, slots: dict[str, Any], matched: bool, **kw: Any) -> Scenario:
    """A state query's scenario: ``state`` matched the question, or not (then it is in ``unmatched``)."""
    states = [] if state is None else [state]
    q = query(states, []) if matched else query([], states)
    return Scenario(label, {"slots": slots, "state": state, "query": q}, **kw)


# -- realistic values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A sensor reading as Home Assistant formats it, named and spoken in both languages."""

    label: str
    name: dict[str, str]  # language -> the entity's name as the user says it
    value: str
    unit: str
    spoken: dict[str, tuple[str, ...]]  # language -> phrases the spoken value must contain

    def state(self, language: str) -> State:
        return State(
            f"sensor.{self.label.replace('-', '_')}",
            self.name[language],
            self.value,
            {"unit_of_measurement": self.unit},
        )

    @property
    def raw(self) -> str:
        return f"{self.value} {self.unit}"


def reading(label: str, en: str, zh: str, value: str, unit: str, say_en: str, say_zh: str) -> Reading:
    """``say_*`` hold the expected phrases, separated by ';'."""
    return Reading(
        label,
        {"en": en, "zh": zh},
        value,
        unit,
        {"en": tuple(say_en.split(";")), "zh": tuple(say_zh.split(";"))},
    )


READINGS = [
    reading(
        "temp-living",
        "living room temperature",
        "客厅温度",
        "21.5",
        "°C",
        "twenty-one point five degrees celsius",
        "二十一点五摄氏度",
    ),
    reading(
        "temp-outdoor",
        "outdoor temperature",
        "室外温度",
        "-2",
        "°C",
        "minus two degrees celsius",
        "零下二摄氏度",
    ),
    reading("temp-porch", "porch temperature", "门廊温度", "1", "°C", "one degree celsius", "一摄氏度"),
    reading(
        "temp-fridge",
        "fridge temperature",
        "冰箱温度",
        "4.0",
        "°C",
        "four point zero degrees celsius",
        "四点零摄氏度",
    ),
    reading(
        "temp-patio",
        "patio temperature",
        "露台温度",
        "72",
        "°F",
        "seventy-two degrees fahrenheit",
        "七十二;华氏",
    ),
    reading(
        "temp-freezer",
        "freezer temperature",
        "冰柜温度",
        "-18.5",
        "°C",
        "minus eighteen point five degrees celsius",
        "零下十八点五摄氏度",
    ),
    reading("humidity", "bathroom humidity", "浴室湿度", "45", "%", "forty-five percent", "百分之四十五"),
    reading("battery", "phone battery", "手机电量", "100", "%", "one hundred percent", "百分之一百"),
    reading(
        "pressure",
        "air pressure",
        "气压",
        "1013",
        "hPa",
        "one thousand thirteen hectopascals",
        "一千零一十三百帕",
    ),
    reading(
        "wind",
        "wind speed",
        "风速",
        "12.5",
        "km/h",
        "twelve point five kilometers per hour",
        "十二点五公里每小时",
    ),
    reading(
        "energy", "energy today", "今日用电", "3.2", "kWh", "three point two kilowatt hours", "三点二千瓦时"
    ),
    reading(
        "energy-small",
        "fridge energy",
        "冰箱用电",
        "0.5",
        "kWh",
        "zero point five kilowatt hours",
        "零点五千瓦时",
    ),
    reading("power", "oven power", "烤箱功率", "1500", "W", "one thousand five hundred watts", "一千五百瓦"),
    reading(
        "voltage",
        "mains voltage",
        "电压",
        "230",
        "V",
        "two hundred thirty volts|two hundred and thirty volts",
        "二百三十|两百三十",
    ),
    reading("current", "charger current", "充电电流", "16", "A", "sixteen amperes", "十六"),
    reading(
        "pm25",
        "bedroom PM2.5",
        "卧室PM2.5",
        "35",
        "µg/m³",
        "thirty-five micrograms per cubic meter",
        "三十五微克每立方米",
    ),
    reading(
        "co2",
        "office CO2",
        "办公室二氧化碳",
        "420",
        "ppm",
        "four hundred twenty parts per million",
        "四百二十",
    ),
    reading("noise", "nursery noise", "婴儿房噪音", "55", "dB", "fifty-five decibels", "五十五分贝"),
    reading("light-level", "hallway illuminance", "走廊照度", "300", "lx", "three hundred lux", "三百勒克斯"),
    reading("disk", "backup size", "备份大小", "1.5", "GB", "one point five gigabytes", "一点五"),
    reading(
        "network", "download speed", "下载速度", "100", "Mbit/s", "one hundred megabits per second", "一百"
    ),
    reading("washer", "washer time left", "洗衣机剩余时间", "5", "min", "five minutes", "五分钟"),
    reading("dishwasher", "dishwasher time left", "洗碗机剩余时间", "2", "h", "two hours", "两小时"),
    reading("dryer", "dryer time left", "烘干机剩余时间", "1", "h", "one hour", "一小时"),
    reading(
        "water",
        "water today",
        "今日用水",
        "105",
        "L",
        "one hundred five liters|one hundred and five liters",
        "一百零五",
    ),
]

# (hour, minute) -> the spoken clock time, English (12-hour, as the template writes it) and Chinese.
CLOCK = [
    (15, 45, "three forty-five p m", "下午三点四十五分"),
    (15, 5, "three oh five p m", "下午三点零五分"),
    (15, 0, "three p m", "下午三点"),
    (0, 0, "twelve a m", "凌晨十二点"),
    (0, 30, "twelve thirty a m", "凌晨十二点三十分"),
    (3, 15, "three fifteen a m", "凌晨三点十五分"),
    (6, 50, "six fifty a m", "早上六点五十分"),
    (9, 5, "nine oh five a m", "上午九点零五分"),
    (11, 59, "eleven fifty-nine a m", "上午十一点五十九分"),
    (12, 0, "twelve p m", "中午十二点"),
    (12, 15, "twelve fifteen p m", "中午十二点十五分"),
    (18, 30, "six thirty p m", "傍晚六点三十分"),
    (20, 1, "eight oh one p m", "晚上八点零一分"),
    (23, 59, "eleven fifty-nine p m", "晚上十一点五十九分"),
    (7, 10, "seven ten a m", "早上七点十分"),
    (16, 20, "four twenty p m", "下午四点二十分"),
]

# date -> English month-and-day, English year, Chinese date.
DATES = [
    (dt.date(2026, 12, 7), "december seventh", "twenty twenty-six", "二零二六年十二月七日"),
    (dt.date(2026, 1, 1), "january first", "twenty twenty-six", "二零二六年一月一日"),
    (dt.date(2026, 2, 22), "february twenty-second", "twenty twenty-six", "二零二六年二月二十二日"),
    (dt.date(2026, 3, 3), "march third", "twenty twenty-six", "二零二六年三月三日"),
    (dt.date(2027, 7, 4), "july fourth", "twenty twenty-seven", "二零二七年七月四日"),
    (dt.date(2025, 10, 31), "october thirty-first", "twenty twenty-five", "二零二五年十月三十一日"),
    (dt.date(2026, 11, 11), "november eleventh", "twenty twenty-six", "二零二六年十一月十一日"),
    (dt.date(2026, 8, 12), "august twelfth", "twenty twenty-six", "二零二六年八月十二日"),
    (dt.date(2026, 5, 13), "may thirteenth", "twenty twenty-six", "二零二六年五月十三日"),
    (dt.date(2028, 2, 29), "february twenty-ninth", "twenty twenty-eight", "二零二八年二月二十九日"),
    (dt.date(2026, 6, 21), "june twenty-first", "twenty twenty-six", "二零二六年六月二十一日"),
    (dt.date(2026, 9, 23), "september twenty-third", "twenty twenty-six", "二零二六年九月二十三日"),
    (dt.date(2030, 4, 30), "april thirtieth", "twenty thirty", "二零三零年四月三十日"),
    (dt.date(2026, 12, 20), "december twentieth", "twenty twenty-six", "二零二六年十二月二十日"),
]

NAMES = {  # generic scenarios: (area, floor, entity, device class, item)
    "en": [
        ("Living Room", "Ground", "Ceiling Light", "garage door", "milk"),
        ("Kitchen", "Upstairs", "Bedroom TV", "window", "AAA batteries"),
        ("Guest Bathroom", "Basement", "Coffee Maker", "blind", "olive oil"),
    ],
    "zh": [
        ("客厅", "一楼", "吊灯", "车库门", "牛奶"),
        ("厨房", "二楼", "卧室电视", "窗户", "鸡蛋"),
        ("次卧", "地下室", "咖啡机", "百叶帘", "橄榄油"),
    ],
}

ENTITY_NAMES = {
    "en": ["Kitchen Light", "Desk Lamp", "Porch Light", "Bedroom TV", "Hall Light", "Garage Light"],
    "zh": ["厨房灯", "台灯", "门廊灯", "卧室电视", "走廊灯", "车库灯"],
}

# A count n -> how it is said alone (English, Chinese) and, in Chinese, before a measure word (2 is 两 there).
COUNTS = [
    (0, "zero", "零", "零"),
    (1, "one", "一", "一"),
    (2, "two", "二", "两"),
    (3, "three", "三", "三"),
    (7, "seven", "七", "七"),
    (12, "twelve", "十二", "十二"),
    (25, "twenty-five", "二十五", "二十五"),
]

PERCENTS = [  # (slot text as the user said it, the value the template writes, English, Chinese)
    ("50", "50", "fifty percent", "百分之五十"),
    ("75%", "75", "seventy-five percent", "百分之七十五"),
    ("百分之30", "30", "thirty percent", "百分之三十"),
    ("100", "100", "one hundred percent", "百分之一百"),
    ("1", "1", "one percent", "百分之一"),
    ("八十", "80", "eighty percent", "百分之八十"),
    ("15", "15", "fifteen percent", "百分之十五"),
]


# -- scenarios per template ---------------------------------------------------------------------------------


def generic(language: str) -> list[Scenario]:
    """Names only: for the templates that print no value (and the errors' ``entity``, ``area``...)."""
    scenarios = []
    for i, (area, floor, entity, device_class, item) in enumerate(NAMES[language]):
        light = State("light.ceiling", entity, "On" if language == "en" else "开")
        slots = {
            "name": entity,
            "area": area,
            "floor": floor,
            "device_class": device_class,
            "item": item,
            "fan_mode": "high" if language == "en" else "高",
            "media": "jazz",
            "state": "on",
        }
        scenarios.append(
            Scenario(
                f"names{i}",
                {
                    "slots": slots,
                    "state": light,
                    "query": query([light]),
                    # the error templates' own variables
                    "entity": entity,
                    "area": area,
                    "floor": floor,
                    "domain": "media_player",
                    "device_class": device_class,
                },
            )
        )
    return scenarios


def error_state(language: str) -> list[Scenario]:
    word = {"en": ["Locked", "Open"], "zh": ["已上锁", "打开"]}[language]
    return [Scenario(f"state-{i}", {"state": w}) for i, w in enumerate(word)]


def sensor_answers(language: str, key: str) -> list[Scenario]:
    """HassGetState's default, one and one_yesno (no): the sensor's value with its unit."""
    out = []
    for r in READINGS:
        # The Chinese default and one answers write "45%" (their own replace), the others "45 %".
        glued = language == "zh" and key in ("default", "one")
        raw = r.raw.replace(" %", "%") if glued else r.raw
        matched = not key.endswith("one_yesno")
        out.append(
            answer(
                r.label,
                r.state(language),
                {"name": r.name[language]},
                matched,
                raw=(raw,),
                expect=r.spoken[language],
            )
        )
    if key.endswith("one_yesno"):
        out.append(answer("yes", READINGS[0].state(language), {"name": READINGS[0].name[language]}, True))
    return out


def listed_answers(language: str, key: str) -> list[Scenario]:
    """HassGetState's any / all / which: names of matched or unmatched entities, "and 3 more" past four."""
    out = []
    for n in (0, 1, 2, 6):
        states = [State(f"light.l{i}", name, "on") for i, name in enumerate(ENTITY_NAMES[language][:n])]
        for matched in (True, False):
            q = query(states, []) if matched else query([], states)
            more = language == "en" and n > 4 and (matched != (key == "all"))
            out.append(
                Scenario(
                    f"{n}-{'matched' if matched else 'unmatched'}",
                    {
                        "slots": {"state": "on", "device_class": "smoke"},
                        "state": states[0] if states else None,
                        "query": q,
                    },
                    raw=("3 more",) if more else (),
                    expect=("and three more",) if more else (),
                )
            )
    return out


def counted_answers(language: str, key: str) -> list[Scenario]:
    """How many: the count alone (en, zh) or before a measure word (zh cover_how_many: 3个窗帘)."""
    out = []
    for n, en, zh, zh_measure in COUNTS:
        states = [State(f"cover.c{i}", f"c{i}", "打开" if language == "zh" else "open") for i in range(n)]
        if key == "cover_how_many":
            raw, say = f"{n}个", f"{zh_measure}个"
        else:
            raw, say = str(n), en if language == "en" else zh
        first = State("cover.c", "c", states[0].state if states else "关闭")  # the template reads its state
        out.append(
            Scenario(
                f"n{n}",
                {"slots": {"device_class": "blind"}, "state": first, "query": query(states)},
                raw=(raw,),
                expect=(say,),
            )
        )
    return out


def where_answers(language: str, key: str) -> list[Scenario]:
    person = {"en": ("anna", ["Work", "Home", "Away"]), "zh": ("安娜", ["not_home", "home"])}[language]
    out = [answer("unknown", None, {"name": person[0]}, True)]
    for place in person[1]:
        out.append(answer(place, State("person.anna", person[0], place), {"name": person[0]}, True))
    return out


def climate_temperature(language: str) -> list[Scenario]:
    """HassClimateGetTemperature: the thermostat's current_temperature attribute."""
    temps = [
        ("21.5", "twenty-one point five degrees", "二十一点五度"),
        ("19", "nineteen degrees", "十九度"),
        ("1", "one degree", "一度"),
        ("-2", "minus two degrees", "零下二度"),
        ("22.0", "twenty-two point zero degrees", "二十二点零度"),
        ("68", "sixty-eight degrees", "六十八度"),
    ]
    out = []
    for value, en, zh in temps:
        number: float = float(value) if "." in value else int(value)
        state = State("climate.living_room", "Living Room", "heat", {"current_temperature": number})
        raw = value if language == "en" else f"{value}度"
        out.append(answer(f"t{value}", state, {}, True, raw=(raw,), expect=(en if language == "en" else zh,)))
    return out


def climate_set(language: str) -> list[Scenario]:
    values = [
        ("21", "twenty-one degrees", "二十一度"),
        ("1", "one degree", "一度"),
        ("22.5", "twenty-two point five degrees", "二十二度"),
        ("18", "eighteen degrees", "十八度"),
    ]
    out = []
    for value, en, zh in values:
        raw = value if language == "en" else f"{value.split('.')[0]}度"
        out.append(
            Scenario(
                f"t{value}",
                {"slots": {"temperature": value}},
                raw=(raw,),
                expect=(en if language == "en" else zh,),
            )
        )
    return out


def weather(language: str) -> list[Scenario]:
    conditions = {
        "sunny": ("sunny", "晴"),
        "partlycloudy": ("partly cloudy", "多云"),
        "rainy": ("raining", "有雨"),
        "snowy": ("snowing", "有雪"),
        "fog": ("fog", "有雾"),
    }
    temps = [
        ("21.5", "°C", "twenty-one point five degrees celsius", "二十一点五摄氏度"),
        ("-2", "°C", "minus two degrees celsius", "零下二摄氏度"),
        ("1", "°C", "one degree celsius", "一摄氏度"),
        ("72", "°F", "seventy-two degrees fahrenheit", "七十二"),
        ("30", "°C", "thirty degrees celsius", "三十摄氏度"),
    ]
    out = []
    for i, (value, unit, en, zh) in enumerate(temps):
        for j, (condition, (word_en, word_zh)) in enumerate(conditions.items()):
            if (i + j) % 2:
                continue
            number: float = float(value) if "." in value else int(value)
            state = State(
                "weather.home", "Home", condition, {"temperature": number, "temperature_unit": unit}
            )
            slots = {"name": "北京"} if language == "zh" and j % 4 == 0 else {}
            raw = f"{value} {unit}" if language == "en" else f"{value}{unit}"
            out.append(
                answer(
                    f"{value}{unit}-{condition}",
                    state,
                    slots,
                    True,
                    raw=(raw,),
                    expect=(en, word_en) if language == "en" else (zh, word_zh),
                )
            )
    return out


def clock(language: str) -> list[Scenario]:
    out = []
    for hour, minute, en, zh in CLOCK:
        time = dt.time(hour, minute)
        if language == "en":
            h12 = 12 if hour % 12 == 0 else hour % 12
            raw = f"{h12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"
        else:
            h12 = 12 if hour in (0, 12) else hour if hour < 12 else hour - 12
            raw = f"{h12}点{minute:02d}分"
        out.append(
            Scenario(
                f"{hour:02d}{minute:02d}",
                {"slots": {"time": time}},
                raw=(raw,),
                expect=(en if language == "en" else zh,),
            )
        )
    return out


def calendar(language: str) -> list[Scenario]:
    months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    out = []
    for date, day_en, year_en, zh in DATES:
        if language == "en":
            suffix = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}.get(date.day, "th")
            raw = f"{months[date.month - 1]} {date.day}{suffix}, {date.year}"
            expect: tuple[str, ...] = (day_en, year_en)
        else:
            raw, expect = f"{date.year}年{date.month}月{date.day}日", (zh,)
        out.append(Scenario(date.isoformat(), {"slots": {"date": date}}, raw=(raw,), expect=expect))
    return out


# Timer durations as slots: text as the user said it (the template's "1" test), or numbers (then Home
# Assistant's template writes "1 hours"); raw values and the English phrases.
TIMER_SLOTS: list[tuple[str, dict[str, Any], tuple[str, ...], tuple[str, ...]]] = [
    ("1h30-text", {"hours": "1", "minutes": "30"}, ("1 hour", "30 minutes"), ("one hour", "thirty minutes")),
    ("1h30-number", {"hours": 1, "minutes": 30}, ("1 hours", "30 minutes"), ("one hour", "thirty minutes")),
    ("5m", {"minutes": "5"}, ("5 minutes",), ("five minutes",)),
    ("1m-number", {"minutes": 1}, ("1 minutes",), ("one minute",)),
    ("1m-text", {"minutes": "1"}, ("1 minute",), ("one minute",)),
    ("half", {"minutes": "half"}, ("30 minutes",), ("thirty minutes",)),
    ("45s", {"seconds": "45"}, ("45 seconds",), ("forty-five seconds",)),
    (
        "2h15m10s",
        {"hours": "2", "minutes": "15", "seconds": "10"},
        ("2 hours", "15 minutes", "10 seconds"),
        ("two hours", "fifteen minutes", "ten seconds"),
    ),
    ("90s-named", {"seconds": "90", "name": " pasta"}, ("90 seconds",), ("ninety seconds",)),
    ("20m-named", {"minutes": "20", "name": "pizza"}, ("20 minutes",), ("twenty minutes",)),
    ("3h", {"hours": 3}, ("3 hours",), ("three hours",)),
]


def timer_set(language: str) -> list[Scenario]:
    return [Scenario(label, {"slots": slots}, raw=raw, expect=say) for label, slots, raw, say in TIMER_SLOTS]


def canceled(language: str) -> list[Scenario]:
    counts = [
        (0, (), ()),
        (1, ("1 timer",), ("one timer",)),
        (3, ("3 timers",), ("three timers",)),
        (12, ("12 timers",), ("twelve timers",)),
    ]
    return [
        Scenario(f"n{n}", {"slots": {"canceled": n, "area": "Kitchen"}}, raw=raw, expect=say)
        for n, raw, say in counts
    ]


def timer_status(language: str) -> list[Scenario]:
    """Timers left: one or several, running or paused (English and Chinese templates differ in shape)."""
    pasta = Timer(True, 5400, start_hours=2, name="pasta")  # 1 h 30 min left of 2 h
    eggs = Timer(True, 260, start_minutes=5, area="Kitchen")  # 4 min 20 s left of 5 min
    tea = Timer(False, 45, start_minutes=3)  # paused, 45 s left
    short = Timer(True, 7200, start_hours=3)  # 2 h left
    # label, timers, English raw values and phrases, Chinese raw values and phrases
    sets: list[
        tuple[str, list[Timer], tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
    ] = [
        ("none", [], (), (), (), ()),
        (
            "one",
            [pasta],
            ("1 hour and 30 minutes",),
            ("one hour and thirty minutes",),
            ("1小时30分钟",),
            ("一小时三十分钟",),
        ),
        (
            "two-running",
            [pasta, eggs],
            ("2 running timers", "4 minutes and 20 seconds", "5 minute"),
            ("two running timers", "four minutes and twenty seconds", "five minute"),
            ("4分钟20秒",),
            ("四分钟二十秒",),
        ),
        ("paused", [tea], ("45 seconds",), ("forty-five seconds",), ("45秒",), ("四十五秒",)),
        (
            "mixed",
            [short, tea, eggs],
            ("2 running timers", "1 paused timer", "4 minutes and 20 seconds"),
            ("two running timers", "one paused timer", "four minutes and twenty seconds"),
            ("4分钟20秒",),
            ("四分钟二十秒",),
        ),
        ("two-hours", [short], ("2 hours",), ("two hours",), ("2小时",), ("两小时",)),
    ]
    out = []
    for label, timers, raw_en, say_en, raw_zh, say_zh in sets:
        raw, say = (raw_en, say_en) if language == "en" else (raw_zh, say_zh)
        out.append(Scenario(label, {"slots": {"timers": timers}}, raw=raw, expect=say))
    return out


def percent_slot(slot: str) -> Callable[[str], list[Scenario]]:
    """The Chinese brightness / volume / fan speed / position answers: the slot's value, written as N%."""

    def scenarios(language: str) -> list[Scenario]:
        names = {
            "name": {"brightness": "台灯", "volume_level": "客厅音箱", "percentage": "吊扇"}.get(
                slot, "窗帘"
            ),
            "area": "客厅",
        }
        return [
            Scenario(f"p{i}", {"slots": {slot: text, **names}}, raw=(f"{value}%",), expect=(zh,))
            for i, (text, value, _, zh) in enumerate(PERCENTS)
        ]

    return scenarios


def shopping(language: str) -> list[Scenario]:
    items = {
        "en": [("2 apples", "two apples"), ("12 eggs", "twelve eggs"), ("1 loaf of bread", "one loaf")],
        "zh": [("2个苹果", "两个苹果"), ("12个鸡蛋", "十二个鸡蛋"), ("1袋面粉", "一袋面粉")],
    }[language]
    return [
        Scenario(
            f"item{i}",
            {"slots": {"item": item, "name": "shopping" if language == "en" else "购物清单"}},
            raw=(item,),
            expect=(say,),
        )
        for i, (item, say) in enumerate(items)
    ]


Provider = Callable[[str], list[Scenario]]


def by_key(provider: Callable[[str, str], list[Scenario]], key: str) -> Provider:
    """One provider for several response keys of an intent, told which key it renders."""

    def scenarios(language: str) -> list[Scenario]:
        return provider(language, key)

    return scenarios


# Template key -> its scenarios, in both languages, then in one only (where only that language's template
# prints the value: Chinese confirms a timer without its length, English a brightness without its level).
_BOTH: dict[str, Provider] = {
    "errors/entity_wrong_state": error_state,
    "HassClimateGetTemperature/default": climate_temperature,
    "HassClimateSetTemperature/default": climate_set,
    "HassGetWeather/default": weather,
    "HassGetCurrentTime/default": clock,
    "HassGetCurrentDate/default": calendar,
    "HassTimerStatus/default": timer_status,
    "HassShoppingListAddItem/item_added": shopping,
    "HassListAddItem/item_added": shopping,
    **{
        f"HassGetState/{k}": by_key(sensor_answers, k)
        for k in ("default", "one", "one_yesno", "bs_one_yesno", "cover_one_yesno")
    },
    **{
        f"HassGetState/{k}": by_key(listed_answers, k)
        for k in ("any", "all", "which", "bs_any", "cover_any", "cover_all", "cover_which")
    },
    **{f"HassGetState/{k}": by_key(counted_answers, k) for k in ("how_many", "cover_how_many")},
    "HassGetState/where": by_key(where_answers, "where"),
}
SCENARIOS: dict[str, dict[str, Provider]] = {
    "en": {
        **_BOTH,
        "HassStartTimer/default": timer_set,
        "HassStartTimer/command": timer_set,
        "HassIncreaseTimer/default": timer_set,
        "HassDecreaseTimer/default": timer_set,
        "HassCancelAllTimers/default": canceled,
        "HassCancelAllTimers/area": canceled,
    },
    "zh": {
        **_BOTH,
        "HassLightSet/brightness": percent_slot("brightness"),
        "HassLightSet/brightness_area": percent_slot("brightness"),
        "HassSetVolume/default": percent_slot("volume_level"),
        "HassFanSetSpeed/default": percent_slot("percentage"),
        "HassSetPosition/valve": percent_slot("position"),
        "HassSetPosition/cover_name": percent_slot("position"),
        "HassSetPosition/cover_area": percent_slot("position"),
        "HassSetPosition/cover_here": percent_slot("position"),
    },
}


# -- rendering ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """A language's rendered responses, and the templates none of its scenarios could render."""

    language: str
    cases: tuple[Case, ...]
    templates: tuple[str, ...]  # every template key, "errors/no_area" or "HassGetState/one"
    skipped: dict[str, str]  # template key -> why it rendered nothing


def templates(language: str) -> dict[str, str]:
    """The package's response templates for a language, by key."""
    data = home_assistant_intents.get_intents(PACKAGE_LANGUAGES[language])
    assert data is not None, f"home-assistant-intents has no {PACKAGE_LANGUAGES[language]}"
    responses = data["responses"]
    found = {f"errors/{key}": text for key, text in responses["errors"].items()}
    for intent, keyed in responses["intents"].items():
        found.update({f"{intent}/{key}": text for key, text in keyed.items()})
    return found


def environment() -> jinja2.Environment:
    """Sandboxed like Home Assistant's, strict so that a variable no scenario gives fails instead of
    rendering as nothing."""
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env


def render(env: jinja2.Environment, template: str, variables: dict[str, Any]) -> str:
    states = [variables.get("state"), *variables.get("query", {}).get("matched", [])]
    by_id = {s.entity_id: s for s in states if isinstance(s, State)}

    def state_attr(entity_id: str, name: str) -> Any:
        state = by_id.get(entity_id)
        return None if state is None else state.attributes.get(name)

    text = env.from_string(template).render({**variables, "state_attr": state_attr})
    return " ".join(text.split())  # Home Assistant's own whitespace rule for speech


_EN_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")


def kept_words(text: str, raw: tuple[str, ...], language: str) -> tuple[str, ...]:
    """The words around the values, which the spoken form must keep: every plain word in English (a
    2-3 letter capital initialism spelled out: "TV" -> "t v"), every run of Chinese characters and Latin
    word in Chinese. Words glued to a digit or symbol ("PM2.5", "I.O.") are left to the explicit checks."""
    for value in raw:
        text = text.replace(value, " ")
    words: list[str] = []
    for token in text.split():
        token = token.strip(",.!?;:，。！？；：、")
        if language == "zh":
            words += _HAN_RUN.findall(token)
            token = _HAN_RUN.sub(" ", token).strip()
            if not token:
                continue
        if not _EN_WORD.fullmatch(token):
            continue
        words.append(" ".join(token.lower()) if token.isupper() and 2 <= len(token) <= 3 else token.lower())
    return tuple(dict.fromkeys(words))


@functools.cache
def corpus(language: str) -> Corpus:
    env = environment()
    found = templates(language)
    cases: list[Case] = []
    skipped: dict[str, str] = {}
    for key, template in found.items():
        provider = SCENARIOS[language].get(key, generic)
        errors = []
        texts: set[str] = set()
        for scenario in provider(language):
            try:
                text = render(env, template, scenario.variables)
            except jinja2.TemplateError as e:
                errors.append(f"{scenario.label}: {e}")
                continue
            if not text or text in texts:
                continue
            texts.add(text)
            expect = tuple(dict.fromkeys(scenario.expect + kept_words(text, scenario.raw, language)))
            cases.append(Case(f"ha-{language}/{key}/{scenario.label}", language, text, scenario.raw, expect))
        if not texts:
            skipped[key] = errors[0] if errors else "renders empty"
    return Corpus(language, tuple(cases), tuple(found), skipped)
