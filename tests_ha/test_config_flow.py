"""Adding the server to Home Assistant, what the TTS entity offers, reload and unload.

All through Home Assistant's own `wyoming` integration, unmodified, against the real server.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from conftest import (
    TONE,
    VOICES,
    ServerKind,
    Servers,
    add_entry_by_user_flow,
    deadline,
    parse_wav,
    request_audio,
    tts_entity_id,
)
from homeassistant.components import tts
from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

STREAMING = ServerKind(streaming=True)
PROGRAM_NAME = "ishowtts"  # the name our `describe` gives the TTS program; HA names the entry after it


async def test_user_flow_creates_entry(ha: HomeAssistant, servers: Servers) -> None:
    server = servers.get(STREAMING)
    entry = await add_entry_by_user_flow(ha, server)
    assert entry.title == PROGRAM_NAME
    assert entry.data == {"host": server.host, "port": server.port}
    assert tts_entity_id(ha, entry).startswith("tts.")


async def test_zeroconf_discovery_flow(ha: HomeAssistant, servers: Servers) -> None:
    """What Home Assistant does when the server advertises itself with --zeroconf."""
    server = servers.get(STREAMING)
    info = ZeroconfServiceInfo(
        ip_address=ip_address(server.host),
        ip_addresses=[ip_address(server.host)],
        port=server.port,
        hostname="ishowtts.local.",
        type="_wyoming._tcp.local.",
        name=f"{PROGRAM_NAME}._wyoming._tcp.local.",
        properties={},
    )
    async with deadline(30, "the zeroconf flow"):
        result = await ha.config_entries.flow.async_init(
            "wyoming", context={"source": SOURCE_ZEROCONF}, data=info
        )
        assert result["type"] is FlowResultType.FORM, result
        assert result["step_id"] == "zeroconf_confirm"
        result = await ha.config_entries.flow.async_configure(result["flow_id"], {})
        await ha.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry = result["result"]
    assert entry.title == PROGRAM_NAME
    assert entry.data == {"host": server.host, "port": server.port}
    assert entry.state is ConfigEntryState.LOADED


async def test_hassio_discovery_flow(ha: HomeAssistant, servers: Servers) -> None:
    """What Home Assistant does when the add-on announces itself to the Supervisor."""
    server = servers.get(STREAMING)
    info = HassioServiceInfo(
        config={"uri": f"tcp://{server.host}:{server.port}"},
        name="iShowTTS",
        slug="ishowtts",
        uuid="0123456789abcdef0123456789abcdef",
    )
    async with deadline(30, "the add-on discovery flow"):
        result = await ha.config_entries.flow.async_init(
            "wyoming", context={"source": SOURCE_HASSIO}, data=info
        )
        assert result["type"] is FlowResultType.FORM, result
        assert result["step_id"] == "hassio_confirm"
        result = await ha.config_entries.flow.async_configure(result["flow_id"], {})
        await ha.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry = result["result"]
    assert entry.title == "iShowTTS"
    assert entry.data == {"host": server.host, "port": server.port}
    assert entry.state is ConfigEntryState.LOADED


async def test_languages_and_voices_come_from_describe(
    ha: HomeAssistant, servers: Servers, hass_ws_client: Any
) -> None:
    """The voice picker in Home Assistant's UI shows every voice of ours under each of its languages."""
    entry = await add_entry_by_user_flow(ha, servers.get(STREAMING))
    entity_id = tts_entity_id(ha, entry)
    ws = await hass_ws_client(ha)

    await ws.send_json_auto_id({"type": "tts/engine/get", "engine_id": entity_id})
    answer = await ws.receive_json()
    assert answer["success"], answer
    languages = {lang for voice in VOICES for lang in voice.languages}
    assert sorted(answer["result"]["provider"]["supported_languages"]) == sorted(languages)

    for language in sorted(languages):
        await ws.send_json_auto_id(
            {"type": "tts/engine/voices", "engine_id": entity_id, "language": language}
        )
        answer = await ws.receive_json()
        assert answer["success"], answer
        expected = sorted(
            ({"voice_id": v.name, "name": v.description} for v in VOICES if language in v.languages),
            key=lambda v: v["name"],
        )
        assert answer["result"]["voices"] == expected, language


async def test_reload_and_unload(
    ha: HomeAssistant, servers: Servers, hass_client: Any, hass_ws_client: Any
) -> None:
    server = servers.get(STREAMING)
    entry = await add_entry_by_user_flow(ha, server)
    entity_id = tts_entity_id(ha, entry)

    async with deadline(30, "reloading the config entry"):
        assert await ha.config_entries.async_reload(entry.entry_id)
        await ha.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert tts_entity_id(ha, entry) == entity_id
    text = "Speaking again after a reload."
    result = await request_audio(ha, hass_client, entity_id, True, text)
    assert result.status == 200, result
    wav = parse_wav(result.body)
    assert 0.6 * TONE.expected_seconds(text) < wav.seconds < 1.4 * TONE.expected_seconds(text)

    async with deadline(30, "unloading the config entry"):
        assert await ha.config_entries.async_unload(entry.entry_id)
        await ha.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert tts.get_engine_instance(ha, entity_id) is None
    ws = await hass_ws_client(ha)
    await ws.send_json_auto_id({"type": "tts/engine/get", "engine_id": entity_id})
    answer = await ws.receive_json()
    assert not answer["success"] and answer["error"]["code"] == "not_found", answer
