"""Unit and currency names: the symbols Home Assistant's sensors report, and what to say for them.

One table, read by the English and the Chinese rules alike. A unit is spoken only right after a number
("21.5 °C", "3 kWh"), where its symbol cannot be anything else; a few symbols that are never words also
alone ("°C" in "values in °C"). The symbols follow Home Assistant's unit constants (temperature, percent,
power and energy, voltage and current, pressure, speed, length, area, volume, mass, light, concentration,
sound, data sizes and rates, time, frequency, irradiance).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CURRENCIES", "UNITS", "Currency", "Unit"]


@dataclass(frozen=True)
class Unit:
    singular: str
    plural: str
    chinese: str
    chinese_before: bool = False
    """A ratio, said before its number in Chinese: 百分之四十五."""


def _unit(singular: str, chinese: str, plural: str | None = None) -> Unit:
    return Unit(singular, plural or singular + "s", chinese)


def _ratio(singular: str, plural: str, chinese: str) -> Unit:
    return Unit(singular, plural, chinese, chinese_before=True)


UNITS: dict[str, Unit] = {
    # temperature
    "°C": _unit("degree Celsius", "摄氏度", "degrees Celsius"),
    "℃": _unit("degree Celsius", "摄氏度", "degrees Celsius"),
    "°F": _unit("degree Fahrenheit", "华氏度", "degrees Fahrenheit"),
    "℉": _unit("degree Fahrenheit", "华氏度", "degrees Fahrenheit"),
    "K": _unit("kelvin", "开尔文", "kelvin"),
    "°": _unit("degree", "度"),
    # ratios
    "%": _ratio("percent", "percent", "百分之"),
    "ppm": _ratio("part per million", "parts per million", "百万分之"),
    "ppb": _ratio("part per billion", "parts per billion", "十亿分之"),
    # power and energy
    "W": _unit("watt", "瓦"),
    "kW": _unit("kilowatt", "千瓦"),
    "MW": _unit("megawatt", "兆瓦"),
    "mW": _unit("milliwatt", "毫瓦"),
    "Wh": _unit("watt hour", "瓦时"),
    "kWh": _unit("kilowatt hour", "千瓦时"),
    "MWh": _unit("megawatt hour", "兆瓦时"),
    "VA": _unit("volt ampere", "伏安"),
    "var": _unit("volt ampere reactive", "乏", "volt amperes reactive"),
    "W/m²": _unit("watt per square meter", "瓦每平方米", "watts per square meter"),
    # electricity
    "V": _unit("volt", "伏"),
    "mV": _unit("millivolt", "毫伏"),
    "kV": _unit("kilovolt", "千伏"),
    "A": _unit("ampere", "安"),
    "mA": _unit("milliampere", "毫安"),
    "Ω": _unit("ohm", "欧姆"),
    "Hz": _unit("hertz", "赫兹", "hertz"),
    "kHz": _unit("kilohertz", "千赫", "kilohertz"),
    "MHz": _unit("megahertz", "兆赫", "megahertz"),
    "GHz": _unit("gigahertz", "吉赫", "gigahertz"),
    # pressure
    "hPa": _unit("hectopascal", "百帕"),
    "kPa": _unit("kilopascal", "千帕"),
    "Pa": _unit("pascal", "帕"),
    "mbar": _unit("millibar", "毫巴"),
    "bar": _unit("bar", "巴"),
    "psi": _unit("psi", "磅每平方英寸", "psi"),
    "inHg": _unit("inch of mercury", "英寸汞柱", "inches of mercury"),
    "mmHg": _unit("millimeter of mercury", "毫米汞柱", "millimeters of mercury"),
    # speed
    "km/h": _unit("kilometer per hour", "公里每小时", "kilometers per hour"),
    "m/s": _unit("meter per second", "米每秒", "meters per second"),
    "mph": _unit("mile per hour", "英里每小时", "miles per hour"),
    "kn": _unit("knot", "节"),
    "mm/h": _unit("millimeter per hour", "毫米每小时", "millimeters per hour"),
    "in/h": _unit("inch per hour", "英寸每小时", "inches per hour"),
    # length and area
    "mm": _unit("millimeter", "毫米"),
    "cm": _unit("centimeter", "厘米"),
    "m": _unit("meter", "米"),
    "km": _unit("kilometer", "公里"),
    "in": _unit("inch", "英寸", "inches"),
    "ft": _unit("foot", "英尺", "feet"),
    "yd": _unit("yard", "码"),
    "mi": _unit("mile", "英里"),
    "m²": _unit("square meter", "平方米"),
    "km²": _unit("square kilometer", "平方公里"),
    "ft²": _unit("square foot", "平方英尺", "square feet"),
    # volume and flow
    "mL": _unit("milliliter", "毫升"),
    "ml": _unit("milliliter", "毫升"),
    "L": _unit("liter", "升"),
    "l": _unit("liter", "升"),
    "m³": _unit("cubic meter", "立方米"),
    "ft³": _unit("cubic foot", "立方英尺", "cubic feet"),
    "gal": _unit("gallon", "加仑"),
    "fl. oz.": _unit("fluid ounce", "液量盎司"),
    "L/min": _unit("liter per minute", "升每分钟", "liters per minute"),
    "m³/h": _unit("cubic meter per hour", "立方米每小时", "cubic meters per hour"),
    # mass
    "mg": _unit("milligram", "毫克"),
    "g": _unit("gram", "克"),
    "kg": _unit("kilogram", "公斤"),
    "lb": _unit("pound", "磅"),
    "lbs": _unit("pound", "磅"),
    "oz": _unit("ounce", "盎司"),
    "st": _unit("stone", "英石", "stone"),
    # light, concentration, sound
    "lx": _unit("lux", "勒克斯", "lux"),
    "lm": _unit("lumen", "流明"),
    "µg/m³": _unit("microgram per cubic meter", "微克每立方米", "micrograms per cubic meter"),
    "μg/m³": _unit("microgram per cubic meter", "微克每立方米", "micrograms per cubic meter"),
    "mg/m³": _unit("milligram per cubic meter", "毫克每立方米", "milligrams per cubic meter"),
    "mg/dL": _unit("milligram per deciliter", "毫克每分升", "milligrams per deciliter"),
    "dB": _unit("decibel", "分贝"),
    "dBm": _unit("decibel milliwatt", "分贝毫瓦", "decibel milliwatts"),
    "dBA": _unit("A-weighted decibel", "分贝", "A-weighted decibels"),
    "UV index": _unit("UV index", "紫外线指数", "UV index"),
    # data
    "bit": _unit("bit", "比特"),
    "B": _unit("byte", "字节"),
    "kB": _unit("kilobyte", "千字节"),
    "KB": _unit("kilobyte", "千字节"),
    "MB": _unit("megabyte", "兆字节"),
    "GB": _unit("gigabyte", "吉字节"),
    "TB": _unit("terabyte", "太字节"),
    "KiB": _unit("kibibyte", "千字节"),
    "MiB": _unit("mebibyte", "兆字节"),
    "GiB": _unit("gibibyte", "吉字节"),
    "TiB": _unit("tebibyte", "太字节"),
    "kbit/s": _unit("kilobit per second", "千比特每秒", "kilobits per second"),
    "Mbit/s": _unit("megabit per second", "兆比特每秒", "megabits per second"),
    "Gbit/s": _unit("gigabit per second", "吉比特每秒", "gigabits per second"),
    "Mbps": _unit("megabit per second", "兆比特每秒", "megabits per second"),
    "kbps": _unit("kilobit per second", "千比特每秒", "kilobits per second"),
    "Gbps": _unit("gigabit per second", "吉比特每秒", "gigabits per second"),
    "B/s": _unit("byte per second", "字节每秒", "bytes per second"),
    "kB/s": _unit("kilobyte per second", "千字节每秒", "kilobytes per second"),
    "MB/s": _unit("megabyte per second", "兆字节每秒", "megabytes per second"),
    "GB/s": _unit("gigabyte per second", "吉字节每秒", "gigabytes per second"),
    # time
    "ms": _unit("millisecond", "毫秒"),
    "µs": _unit("microsecond", "微秒"),
    "s": _unit("second", "秒"),
    "sec": _unit("second", "秒"),
    "min": _unit("minute", "分钟"),
    "mins": _unit("minute", "分钟"),
    "h": _unit("hour", "小时"),
    "hr": _unit("hour", "小时"),
    "hrs": _unit("hour", "小时"),
    "d": _unit("day", "天"),
    "wk": _unit("week", "周"),
    # the words Home Assistant's templates put after a count: said in the singular after "one"
    "seconds": _unit("second", "秒"),
    "minutes": _unit("minute", "分钟"),
    "hours": _unit("hour", "小时"),
    "days": _unit("day", "天"),
    "weeks": _unit("week", "周"),
    "months": _unit("month", "个月"),
    "years": _unit("year", "年"),
    "degrees": _unit("degree", "度"),
    "items": _unit("item", "项"),
    "times": _unit("time", "次"),
    "lights": _unit("light", "盏灯"),
    "devices": _unit("device", "个设备"),
    "people": _unit("person", "人", "people"),
}
"""Symbol -> names. Case matters ("mW" is not "MW"); a name is matched whole, never inside a word."""

STANDALONE_UNITS = ("°C", "℃", "°F", "℉", "µg/m³", "μg/m³", "m²", "m³", "km²", "ft²", "ft³", "W/m²", "mg/m³")
"""Symbols that are never words, so they are spoken also without a number before them."""


@dataclass(frozen=True)
class Currency:
    singular: str
    plural: str
    cent_singular: str | None
    cent_plural: str | None
    chinese: str


CURRENCIES: dict[str, Currency] = {
    "$": Currency("dollar", "dollars", "cent", "cents", "美元"),
    "US$": Currency("US dollar", "US dollars", "cent", "cents", "美元"),
    "USD": Currency("US dollar", "US dollars", "cent", "cents", "美元"),
    "€": Currency("euro", "euros", "cent", "cents", "欧元"),
    "EUR": Currency("euro", "euros", "cent", "cents", "欧元"),
    "£": Currency("pound", "pounds", "penny", "pence", "英镑"),
    "GBP": Currency("pound", "pounds", "penny", "pence", "英镑"),
    "¥": Currency("yen", "yen", None, None, "元"),
    "JPY": Currency("yen", "yen", None, None, "日元"),
    "CNY": Currency("yuan", "yuan", None, None, "元"),
    "RMB": Currency("yuan", "yuan", None, None, "元"),
    "元": Currency("yuan", "yuan", None, None, "元"),
    "₹": Currency("rupee", "rupees", None, None, "卢比"),
    "INR": Currency("rupee", "rupees", None, None, "卢比"),
    "CHF": Currency("Swiss franc", "Swiss francs", "centime", "centimes", "瑞士法郎"),
    "CAD": Currency("Canadian dollar", "Canadian dollars", "cent", "cents", "加元"),
    "AUD": Currency("Australian dollar", "Australian dollars", "cent", "cents", "澳元"),
    "SEK": Currency("Swedish krona", "Swedish kronor", None, None, "瑞典克朗"),
    "NOK": Currency("Norwegian krone", "Norwegian kroner", None, None, "挪威克朗"),
    "DKK": Currency("Danish krone", "Danish kroner", None, None, "丹麦克朗"),
    "PLN": Currency("zloty", "zlotys", None, None, "兹罗提"),
    "₩": Currency("won", "won", None, None, "韩元"),
    "KRW": Currency("won", "won", None, None, "韩元"),
    "₽": Currency("ruble", "rubles", None, None, "卢布"),
    "BTC": Currency("bitcoin", "bitcoin", None, None, "比特币"),
}
"""Symbol or ISO code -> names. A symbol goes before the amount ("$5"); a code before or after ("20 EUR")."""
