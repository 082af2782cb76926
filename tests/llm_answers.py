"""Answers in the style of a language model, the other half of the front end's corpus.

Home Assistant hands this server whatever its conversation agent wrote, and a language model writes markdown,
emoji, reasoning blocks, links, money, versions and abbreviations that no response template has. These are
written for this project (not taken from any model's output or data set); each names the parts that need
normalizing (``raw``), the phrases its spoken form must keep (``expect``, following the front end's
conventions of issue 20) and those it must never say (``absent``: reasoning, code, URL paths).
"""

from __future__ import annotations

from corpus_case import Case


def _en(id: str, text: str, raw: str, expect: str, absent: str = "") -> Case:
    """``raw``, ``expect`` and ``absent`` are ';'-separated."""
    return Case(f"llm-en/{id}", "en", text, _split(raw), _split(expect), _split(absent))


def _zh(id: str, text: str, raw: str, expect: str, absent: str = "") -> Case:
    return Case(f"llm-zh/{id}", "zh", text, _split(raw), _split(expect), _split(absent))


def _split(items: str) -> tuple[str, ...]:
    return tuple(item for item in items.split(";") if item)


EN = [
    _en(
        "bold",
        "**Sure!** The living room is at 21 °C right now.",
        "**;21 °C",
        "sure;the living room is at;twenty-one degrees celsius",
    ),
    _en(
        "italics",
        "That is *really* cold: -5 °C outside.",
        "*;-5 °C",
        "really cold;minus five degrees celsius",
    ),
    _en(
        "heading",
        "# Weather today\nIt will be sunny, with a high of 22 °C.",
        "#;22 °C",
        "weather today;sunny;twenty-two degrees celsius",
    ),
    _en(
        "bullets",
        "Here is your list:\n- milk\n- 12 eggs\n- bread",
        "- ;12",
        "here is your list;milk;twelve eggs;bread",
    ),
    _en(
        "numbered",
        "Steps:\n1. Open the app.\n2. Tap Settings.\n3. Choose Voice.",
        "1.;2.;3.",
        "open the app;tap settings;choose voice",
    ),
    _en("code-span", "Run `ha core restart` to restart the server.", "`", "run;to restart the server"),
    _en(
        "fenced-code",
        "Add this to your config:\n```yaml\nsensor:\n  - platform: template\n    value: 42\n```\n"
        "Then restart Home Assistant.",
        "```",
        "add this to your config;then restart home assistant",
        "platform;template;yaml;forty-two",
    ),
    _en(
        "link",
        "See [the setup guide](https://example.com/docs/setup) for details.",
        "[;](https://",
        "see the setup guide for details",
        "https;docs",
    ),
    _en(
        "table",
        "| Room | Temperature |\n|---|---|\n| Kitchen | 21 °C |\n| Bedroom | 19 °C |",
        "|;21 °C;19 °C",
        "kitchen twenty-one degrees celsius;bedroom nineteen degrees celsius",
    ),
    _en(
        "emoji",
        "Good morning! ☀️ It's 15 °C and sunny 😎",
        "☀️;😎;15 °C",
        "good morning;fifteen degrees celsius;and sunny",
    ),
    _en(
        "think-closed",
        "<think>The user wants the time. I should check the clock first.</think>It is 3:45 PM.",
        "<think>;3:45 PM",
        "it is;three forty-five p m",
        "user wants;check the clock",
    ),
    _en(
        "think-unclosed",
        "Okay. <think>Let me reason about the thermostat schedule and the 7 day plan",
        "<think>",
        "okay",
        "reason;thermostat schedule;seven;day plan",
    ),
    _en(
        "think-multiline",
        "<think>\nStep 1: find the sensor.\nStep 2: read it.\n</think>\nThe humidity is 42 %.",
        "<think>;42 %",
        "the humidity is;forty-two percent",
        "step;find the sensor;read it",
    ),
    _en(
        "url",
        "More at https://www.example.com/path/to/page?id=7 today.",
        "https://www.example.com/path/to/page?id=7",
        "more at;example dot com;today",
        "path;page;www;https;seven",
    ),
    _en(
        "email",
        "Write to anna@example.com if it breaks.",
        "@",
        "write to;anna at example dot com;if it breaks",
    ),
    _en(
        "html-tags",
        "<b>Note:</b> the garage door is <i>open</i>.",
        "<b>;</i>",
        "note;the garage door is open",
    ),
    _en(
        "html-entities",
        "Tom &amp; Jerry&nbsp;are home.",
        "&amp;;&nbsp;",
        "tom and jerry are home",
        "amp;nbsp",
    ),
    _en(
        "dollars", "That costs $5.50 per month.", "$5.50", "that costs;five dollars and fifty cents;per month"
    ),
    _en(
        "euros",
        "Tickets are €3 each, or 20 EUR for a family.",
        "€3;20 EUR",
        "tickets are;three euros;twenty euros;for a family",
    ),
    _en("pounds", "A coffee is £2.99 here.", "£2.99", "a coffee is;two pounds and ninety-nine pence"),
    _en("yen", "It was ¥100 at the shop.", "¥100", "it was;one hundred yen;at the shop"),
    _en("percent", "Battery at 45% and charging.", "45%", "battery at;forty-five percent;and charging"),
    _en(
        "ordinals",
        "It is the 1st of the month and your 22nd reminder.",
        "1st;22nd",
        "the first of the month;your twenty-second reminder",
    ),
    _en(
        "years",
        "Released in 2026, it replaced the 2005 model.",
        "2026;2005",
        "released in twenty twenty-six;the two thousand five model",
    ),
    _en(
        "phone",
        "Call 555-0123 for support.",
        "555-0123",
        "call;five five five;zero one two three;for support",
    ),
    _en(
        "version",
        "Update to v2.3.1 tonight.",
        "v2.3.1",
        "update to version two point three point one tonight",
    ),
    _en("range", "Keep it between 20-25 °C at night.", "20-25 °C", "twenty to twenty-five degrees celsius"),
    _en(
        "fractions",
        "Add 1/2 cup of sugar and 3/4 cup of flour.",
        "1/2;3/4",
        "one half cup of sugar;three quarters cup of flour",
    ),
    _en(
        "titles",
        "Mr. Smith and Dr. Jones live on Main St. near the park.",
        "Mr.;Dr.;St.",
        "mister smith;doctor jones;main;near the park",
    ),
    _en(
        "latin",
        "Bring snacks, e.g. fruit, nuts, etc.",
        "e.g.;etc.",
        "bring snacks;for example fruit;et cetera",
    ),
    _en(
        "symbols",
        "Lights & fans: 2 + 2 = 4 devices.",
        "&;+;=",
        "lights and fans;two plus two equals four devices",
    ),
    _en(
        "initialisms",
        "Plug the USB cable into the TV and check the LED.",
        "USB;TV;LED",
        "plug the u s b cable into the t v;check the l e d",
    ),
    _en("thousands", "You walked 1,234 steps today.", "1,234", "one thousand two hundred thirty-four steps"),
    _en(
        "negative-decimal",
        "The freezer is at -18.5 °C.",
        "-18.5 °C",
        "minus eighteen point five degrees celsius",
    ),
    _en(
        "energy",
        "Solar made 3.2 kWh today, peaking at 1500 W.",
        "3.2 kWh;1500 W",
        "three point two kilowatt hours;one thousand five hundred watts",
    ),
    _en("clock-24h", "The train leaves at 14:05.", "14:05", "the train leaves at fourteen oh five"),
    _en("iso-date", "Your next bin day is 2026-12-07.", "2026-12-07", "december seventh;twenty twenty-six"),
    _en(
        "date-and-time",
        "Your appointment is on December 7th, 2026 at 3:00 PM.",
        "December 7th, 2026;3:00 PM",
        "your appointment is on december seventh;twenty twenty-six;three p m",
    ),
    _en(
        "summary",
        "## Summary\n- **Lights:** 3 on\n- **Doors:** all locked",
        "##;**;3",
        "summary;lights;three on;doors;all locked",
    ),
    _en(
        "blockquote",
        '> Tip: say "turn off the lights".\n\n---\n\nThat\'s it.',
        ">",
        "tip;turn off the lights;that's it",
    ),
    _en(
        "underscore-tilde",
        "The entity light_kitchen is at ~50% brightness.",
        "_;~50%",
        "kitchen;fifty percent brightness",
    ),
    _en("mention", "Thanks @anna, the lights are off.", "@", "thanks;anna;the lights are off"),
    _en("clock-oh", "Sunset is at 5:05 PM.", "5:05 PM", "sunset is at five oh five p m"),
    _en(
        "fahrenheit",
        "Preheat the oven to 350 °F.",
        "350 °F",
        "preheat the oven to;three hundred fifty degrees fahrenheit",
    ),
    _en("singular-unit", "It dropped by 1 °C in 1 h.", "1 °C;1 h", "one degree celsius;one hour"),
]

ZH = [
    _zh("bold", "**好的！** 客厅现在21.5°C。", "**;21.5°C", "好的;客厅现在;二十一点五摄氏度"),
    _zh("italics", "室外*非常*冷，-2°C。", "*;-2°C", "室外;非常;零下二摄氏度"),
    _zh(
        "heading",
        "# 今日天气\n最高25°C，最低18°C。",
        "#;25°C;18°C",
        "今日天气;最高二十五摄氏度;最低十八摄氏度",
    ),
    _zh("bullets", "购物清单：\n- 牛奶\n- 12个鸡蛋\n- 面包", "- ;12", "购物清单;牛奶;十二个鸡蛋;面包"),
    _zh(
        "numbered",
        "步骤：\n1. 打开应用。\n2. 点击设置。\n3. 选择语音。",
        "1.;2.;3.",
        "打开应用;点击设置;选择语音",
    ),
    _zh("code-span", "运行 `ha core restart` 即可重启。", "`", "运行;即可重启"),
    _zh(
        "fenced-code",
        "把下面的配置加进去：\n```yaml\nsensor:\n  - platform: template\n    value: 42\n```\n然后重启。",
        "```",
        "把下面的配置加进去;然后重启",
        "platform;template;yaml;四十二",
    ),
    _zh(
        "link",
        "详情请看[官方文档](https://example.com/docs)。",
        "[;](https://",
        "详情请看官方文档",
        "https;docs",
    ),
    _zh(
        "table",
        "| 房间 | 温度 |\n|---|---|\n| 厨房 | 21°C |\n| 卧室 | 19°C |",
        "|;21°C;19°C",
        "厨房;二十一摄氏度;卧室;十九摄氏度",
    ),
    _zh("emoji", "早上好！☀️ 今天25°C，适合出门😎", "☀️;😎;25°C", "早上好;二十五摄氏度;适合出门"),
    _zh(
        "think-closed",
        "<think>用户想知道时间，我要先看一下时钟。</think>现在是下午3点45分。",
        "<think>;3点45分",
        "现在是下午三点四十五分",
        "用户想知道;时钟",
    ),
    _zh(
        "think-unclosed",
        "好的。<think>让我想想空调的定时计划，每7天一次",
        "<think>",
        "好的",
        "空调;定时计划;七",
    ),
    _zh(
        "url",
        "更多信息见 https://www.example.com/path 。",
        "https://www.example.com/path",
        "更多信息见",
        "https;path;www",
    ),
    _zh("email", "请发邮件到 anna@example.com。", "@", "请发邮件到;anna;example"),
    _zh("html-tags", "<b>注意：</b>车库门<i>开着</i>。", "<b>;</i>", "注意;车库门开着"),
    _zh("html-entities", "汤姆&amp;杰瑞&nbsp;都在家。", "&amp;;&nbsp;", "汤姆;杰瑞;都在家", "amp;nbsp"),
    _zh("yuan", "这杯咖啡¥100。", "¥100", "这杯咖啡;一百元"),
    _zh("dollars", "订阅每月$5。", "$5", "订阅每月;五美元"),
    _zh("euros", "门票€3一张。", "€3", "门票;三欧元;一张"),
    _zh("percent", "电量45%，正在充电。", "45%", "电量;百分之四十五;正在充电"),
    _zh("clock-24h", "列车14:05出发。", "14:05", "列车;十四点零五分;出发"),
    _zh("date", "下次收垃圾是2026年12月7日。", "2026年12月7日", "下次收垃圾是;二零二六年十二月七日"),
    _zh("thousands", "今天走了1,234步。", "1,234", "今天走了;一千二百三十四步"),
    _zh("hundred-and-five", "有105封未读邮件。", "105", "有;一百零五封未读邮件"),
    _zh("decimal", "体温36.8度，正常。", "36.8", "体温;三十六点八度;正常"),
    _zh("negative", "冰柜-18°C。", "-18°C", "冰柜;零下十八摄氏度"),
    _zh("energy", "今天发电3.2 kWh，峰值1500 W。", "3.2 kWh;1500 W", "今天发电;三点二千瓦时;峰值;一千五百瓦"),
    _zh("pressure", "气压1013 hPa。", "1013 hPa", "气压;一千零一十三百帕"),
    _zh("wind", "风速12 km/h。", "12 km/h", "风速;十二公里每小时"),
    _zh("air", "PM2.5是35 µg/m³。", "PM2.5;35 µg/m³", "三十五微克每立方米"),
    _zh("noise", "噪音55 dB。", "55 dB", "噪音;五十五分贝"),
    _zh("light", "照度300 lx。", "300 lx", "照度;三百勒克斯"),
    _zh("durations", "洗衣还要45 min，烘干还要1 h。", "45 min;1 h", "洗衣还要;四十五分钟;烘干还要;一小时"),
    _zh("range", "温度保持在20-25°C。", "20-25°C", "温度保持在;二十;二十五摄氏度"),
    _zh("fraction", "加1/2杯糖。", "1/2", "二分之一;杯糖"),
    _zh("version", "请升级到v2.3.1。", "v2.3.1", "请升级到;二点三点一"),
    _zh("phone", "客服电话400-820-8820。", "400-820-8820", "客服电话;四零零;八二零;八八二零"),
    _zh("initialisms", "把USB线插到TV上。", "USB;TV", "把;线插到;上"),
    _zh("summary", "## 总结\n- **灯：** 3盏开着\n- **门：** 全部锁好", "##;**;3", "总结;三盏开着;全部锁好"),
    _zh("symbols", "灯+风扇=2个设备。", "+;=;2", "灯;风扇;两个设备"),
    _zh("year", "2026年是马年。", "2026年", "二零二六年是马年"),
    _zh("ordinal", "你排第3名。", "第3名", "你排第三名"),
    _zh("money-yuan-decimal", "电费¥0.56每度。", "¥0.56", "电费;零点五六元|五角六分"),
]

ANSWERS = EN + ZH
