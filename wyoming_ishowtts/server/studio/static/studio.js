// The voice studio page.  Plain JavaScript, no build step.  Every URL is relative, so the page works
// wherever it is mounted (directly, or under Home Assistant's ingress path).
"use strict";

const NEW_VOICE = "";  // the Voice choice that means "the clip in the form, not saved yet"
const $ = (id) => document.getElementById(id);

const state = {
  clip: null,          // Blob of the clip in the form (uploaded or recorded)
  clipWhat: "",        // where the clip came from, for its summary line
  editing: null,       // name of the voice being edited, or null when adding
  voices: [],
  limits: { max_clip_seconds: 30 },
  recorder: null,
  checkTimer: null,
  checkSeq: 0,
};

// -- talking to the server ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.code = error.code || "";
    this.body = error;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    if (response.status === 401) showTokenBox();
    throw new ApiError(response.status, body);
  }
  return response;
}

async function getJson(path) {
  return (await api(path)).json();
}

function showTokenBox() {
  $("token-box").hidden = false;
}

// -- server state and the speed chart ------------------------------------------------------------

async function refreshStatus() {
  try {
    const status = await getJson("api/status");
    state.limits = status.limits;
    const warm = status.state === "ready" ? "ready" : "loading the model…";
    const device = status.device ? `${status.device}, ${status.precision}` : "device not known yet";
    const cache = status.audio_cache;
    const cached = cache
      ? `Audio cache: ${cache.entries} sentence(s), ${(cache.bytes / 1048576).toFixed(1)} of ` +
        `${(cache.max_bytes / 1048576).toFixed(0)} MB; ${cache.hits} hit(s), ${cache.misses} miss(es). `
      : "Audio cache off. ";
    $("server-state").textContent =
      `Model ${status.model} on ${device}: ${warm}. Queue: ${status.queue.requests} request(s). ` +
      cached + `Version ${status.version}.`;
    drawChart(status.recent);
    return status;
  } catch (err) {
    $("server-state").textContent = `Server not reachable: ${err.message}`;
    return null;
  }
}

// Bars are coloured by where the request came from: Home Assistant (Wyoming) or this page.
const SOURCES = {
  wyoming: { color: "#1f6feb", label: "Home Assistant (Wyoming)" },
  studio: { color: "#8250df", label: "this page" },
};

function drawChart(records) {
  const box = $("chart");
  const done = records.filter((r) => r.ttfa !== null && r.rtf !== null);
  if (!done.length) {
    box.innerHTML = '<p class="empty">No requests yet. Press Speak to make one.</p>';
    return;
  }
  const w = 900, h = 190, pad = 36, gap = 40, half = (w - 2 * pad - gap) / 2;
  const panel = (x0, key, title, unit, line) => {
    const values = done.map((r) => r[key]);
    const max = Math.max(line || 0, ...values) * 1.15 || 1;
    const step = half / Math.max(values.length, 20);
    const bars = done.map((r, i) => {
      const v = r[key];
      const bh = (v / max) * (h - 2 * pad);
      const source = r.source === "wyoming" ? "wyoming" : "studio";
      const { color, label } = SOURCES[source];
      return `<rect data-source="${source}" x="${x0 + i * step + 1}" y="${h - pad - bh}" width="${Math.max(step - 2, 1)}" height="${bh}" fill="${color}"><title>${label}: ${v.toFixed(2)} ${unit}</title></rect>`;
    }).join("");
    const ref = line ? `<line x1="${x0}" x2="${x0 + half}" y1="${h - pad - (line / max) * (h - 2 * pad)}" y2="${h - pad - (line / max) * (h - 2 * pad)}" stroke="#b42318" stroke-dasharray="4 3"/>` : "";
    const last = values[values.length - 1];
    return `<text x="${x0}" y="16" font-size="13" font-weight="600">${title}</text>` +
      `<text x="${x0 + half}" y="16" font-size="12" text-anchor="end">latest ${last.toFixed(2)} ${unit}</text>` +
      `<line x1="${x0}" x2="${x0 + half}" y1="${h - pad}" y2="${h - pad}" stroke="#8a93a3"/>` +
      `<text x="${x0 - 4}" y="${pad}" font-size="11" text-anchor="end">${max.toFixed(1)}</text>` +
      `<text x="${x0 - 4}" y="${h - pad}" font-size="11" text-anchor="end">0</text>` + bars + ref;
  };
  const legend = Object.values(SOURCES).map((s, i) =>
    `<rect x="${pad + i * 230}" y="${h - 14}" width="10" height="10" fill="${s.color}"/>` +
    `<text x="${pad + i * 230 + 14}" y="${h - 5}" font-size="12">${s.label}</text>`).join("");
  box.innerHTML = `<svg viewBox="0 0 ${w} ${h}" xmlns="http://www.w3.org/2000/svg">` +
    panel(pad, "ttfa", "Time to first audio", "s", 0) +
    panel(pad + half + gap, "rtf", "Real-time factor", "", 1) +
    legend + `</svg>`;
  box.setAttribute("aria-label",
    `Chart of ${done.length} recent requests; latest time to first audio ${done[done.length - 1].ttfa.toFixed(2)} s, ` +
    `real-time factor ${done[done.length - 1].rtf.toFixed(2)}`);
}

// -- the voice list -------------------------------------------------------------------------------

async function refreshVoices() {
  let answer;
  try {
    answer = await getJson("api/voices");
  } catch (err) {
    $("voices").innerHTML = "";
    $("voices-where").textContent = `Could not list the voices: ${err.message}`;
    return;
  }
  state.voices = answer.voices;
  $("voices-where").textContent = `New voices are saved in ${answer.voices_dir} on the server.`;
  const list = $("voices");
  list.innerHTML = "";
  for (const voice of answer.voices) list.append(voiceItem(voice));
  if (!answer.voices.length) {
    const li = document.createElement("li");
    li.className = "hint";
    li.textContent = "No voices yet: add one below.";
    list.append(li);
  }
  fillVoiceChoice();
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function voiceItem(voice) {
  const li = el("li", { className: "voice" });
  li.dataset.voice = voice.name;
  const badge = voice.ready
    ? el("span", { className: "badge ready", textContent: "ready" })
    : el("span", { className: "badge not-ready", textContent: "not ready" });
  const title = el("h3", {}, voice.name, badge);
  const languages = voice.languages.length ? voice.languages.join(", ") : "default languages";
  const length = voice.clip_seconds != null ? `${voice.clip_seconds.toFixed(1)} s clip` : "no readable clip";
  const speed = voice.speed ? `, speed ${voice.speed}` : "";
  const info = el("div", {},
    title,
    el("div", { className: "meta", textContent: voice.description || "" }),
    el("div", { className: "meta", textContent: `${languages} · ${length}${speed}` }));
  const notes = el("ul", { className: "problems" });
  for (const level of ["error", "warning", "ok"]) {
    for (const finding of voice.findings.filter((f) => f.level === level)) notes.append(findingItem(finding));
  }
  if (notes.children.length) info.append(notes);

  const player = el("audio", { controls: true, preload: "none" });
  player.setAttribute("aria-label", `Reference clip of ${voice.name}`);
  if (voice.clip_seconds != null) player.src = `api/voices/${encodeURIComponent(voice.name)}/audio`;

  const buttons = el("div", { className: "buttons" });
  if (voice.editable) {
    const edit = el("button", { type: "button", textContent: "Edit" });
    edit.addEventListener("click", () => startEditing(voice));
    const remove = el("button", { type: "button", textContent: "Delete" });
    remove.addEventListener("click", () => deleteVoice(voice.name));
    buttons.append(edit, remove);
  } else {
    buttons.append(el("span", { className: "hint", textContent: voice.builtin ? "built in" : "read-only folder" }));
  }
  li.append(info, player, buttons);
  return li;
}

function fillVoiceChoice() {
  const select = $("voice");
  const previous = select.value;
  select.innerHTML = "";
  select.append(el("option", { value: NEW_VOICE, textContent: "The clip in the form (not saved yet)" }));
  for (const voice of state.voices) {
    if (voice.ready) select.append(el("option", { value: voice.name, textContent: voice.name }));
  }
  const names = state.voices.map((v) => v.name);
  select.value = names.includes(previous) ? previous : (state.clip ? NEW_VOICE : (names[0] || NEW_VOICE));
  if (select.value !== previous && !names.includes(select.value)) select.value = NEW_VOICE;
}

async function deleteVoice(name) {
  if (!window.confirm(`Delete the voice "${name}"? Its folder is removed from the server.`)) return;
  try {
    await api(`api/voices/${encodeURIComponent(name)}`, { method: "DELETE" });
    say("form-message", `Deleted "${name}".`, "ok");
    if (state.editing === name) stopEditing();
  } catch (err) {
    say("form-message", err.message, "error");
  }
  await refreshVoices();
}

// -- the voice form: clip, checks, save -----------------------------------------------------------

function say(id, text, kind = "") {
  const node = $(id);
  node.textContent = text;
  node.className = kind;
}

// A finding of the server's clip checker: its words as they are (the checker writes them for people),
// its stable code kept for whoever needs to tell findings apart.
function findingItem(finding) {
  const li = el("li", { className: finding.level, textContent: finding.message });
  li.dataset.code = finding.code || "";
  return li;
}

function showFindings(findings) {
  const list = $("findings");
  list.innerHTML = "";
  for (const finding of findings || []) list.append(findingItem(finding));
}

function setClip(blob, what) {
  state.clip = blob;
  state.clipWhat = what || "";
  const player = $("clip-player");
  if (player.dataset.url) URL.revokeObjectURL(player.dataset.url);
  if (blob) {
    player.dataset.url = URL.createObjectURL(blob);
    player.src = player.dataset.url;
    $("clip-box").hidden = false;
    $("clip-summary").textContent = what;
    $("voice").value = NEW_VOICE;
    checkClip();
  } else {
    player.removeAttribute("src");
    delete player.dataset.url;
    $("clip-box").hidden = true;
    showFindings([]);
  }
}

function clipForm() {
  const form = new FormData();
  form.append("audio", state.clip, state.clip.name || "clip.wav");
  return form;
}

async function checkClip() {
  if (!state.clip) return;
  const seq = ++state.checkSeq;
  const form = clipForm();
  const transcript = $("transcript").value.trim();
  if (transcript) form.append("transcript", transcript);
  showFindings([{ level: "ok", code: "checking", message: "Checking the clip…" }]);
  try {
    const report = await (await api("api/check", { method: "POST", body: form })).json();
    if (seq !== state.checkSeq) return;
    const c = report.clip;
    $("clip-summary").textContent =
      `${state.clipWhat}: ${c.seconds.toFixed(1)} s, ${c.rate} Hz, ` +
      `${c.channels === 1 ? "mono" : c.channels + " channels"}`;
    const findings = report.findings.slice();
    if (!transcript) {
      findings.unshift({
        level: "warning", code: "transcript-missing", message: "Write the transcript: exactly the words spoken in the clip.",
      });
    }
    showFindings(findings);
  } catch (err) {
    if (seq !== state.checkSeq) return;
    showFindings([{ level: "error", code: err.code, message: err.message }]);
  }
}

function scheduleCheck() {
  clearTimeout(state.checkTimer);
  if (state.clip && !state.editing) state.checkTimer = setTimeout(checkClip, 700);
}

async function saveVoice(event) {
  event.preventDefault();
  const button = $("save");
  button.disabled = true;
  try {
    if (state.editing) {
      const body = {
        transcript: $("transcript").value,
        description: $("description").value,
        languages: $("languages").value,
        speed: $("speed").value,
      };
      await api(`api/voices/${encodeURIComponent(state.editing)}`, {
        method: "PATCH",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      say("form-message", `Saved the changes to "${state.editing}".`, "ok");
      stopEditing();
    } else {
      if (!state.clip) throw new Error("Choose an audio file or record a clip first.");
      const form = clipForm();
      for (const id of ["name", "transcript", "description", "languages", "speed"]) {
        form.append(id, $(id).value);
      }
      const answer = await (await api("api/voices", { method: "POST", body: form })).json();
      say("form-message",
        `Saved "${answer.voice.name}". Home Assistant lists it the next time it asks for voices.`, "ok");
      showFindings(answer.findings);
      resetForm();
      await refreshVoices();
      $("voice").value = answer.voice.name;
      return;
    }
  } catch (err) {
    say("form-message", err.message, "error");
    if (err.body && err.body.findings) showFindings(err.body.findings);
  } finally {
    button.disabled = false;
  }
  await refreshVoices();
}

function resetForm() {
  for (const id of ["name", "transcript", "description", "languages", "speed"]) $(id).value = "";
  $("audio-file").value = "";
  setClip(null);
}

function startEditing(voice) {
  state.editing = voice.name;
  $("editor-title").textContent = `Edit "${voice.name}"`;
  $("editor-hint").textContent = "The name and the clip stay; change what is said, how it is described, its languages or speed.";
  $("name").value = voice.name;
  $("name").disabled = true;
  $("transcript").value = voice.transcript || "";
  $("description").value = voice.description || "";
  $("languages").value = voice.languages.join(", ");
  $("speed").value = voice.speed || "";
  for (const node of document.querySelectorAll(".clip-only")) node.hidden = true;
  $("cancel-edit").hidden = false;
  showFindings([]);
  say("form-message", "");
  $("transcript").focus();
}

function stopEditing() {
  state.editing = null;
  $("editor-title").textContent = "Add a voice";
  $("editor-hint").textContent = "Record or upload 5-10 seconds of one person speaking clearly, and write exactly what they say. The clip is checked as soon as you choose it.";
  $("name").disabled = false;
  for (const node of document.querySelectorAll(".clip-only")) node.hidden = false;
  $("clip-box").hidden = !state.clip;
  $("cancel-edit").hidden = true;
  for (const id of ["name", "transcript", "description", "languages", "speed"]) $(id).value = "";
}

// -- recording from the microphone ---------------------------------------------------------------

async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices || !window.MediaRecorder) {
    say("record-state", "Recording needs the page over https (or on this computer); upload a file instead.", "error");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    say("record-state", `The microphone could not be opened: ${err.message}`, "error");
    return;
  }
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  const started = performance.now();
  const limit = (state.limits.max_clip_seconds || 30) * 1000;
  recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
  const tick = setInterval(() => {
    const ms = performance.now() - started;
    say("record-state", `Recording… ${(ms / 1000).toFixed(1)} s. Press Record again to stop.`);
    if (ms > limit) recorder.stop();
  }, 200);
  recorder.addEventListener("stop", async () => {
    clearInterval(tick);
    for (const track of stream.getTracks()) track.stop();
    state.recorder = null;
    $("record").setAttribute("aria-pressed", "false");
    try {
      const blob = new Blob(chunks, { type: recorder.mimeType });
      const wav = await toWav(blob);
      setClip(new File([wav], "recording.wav", { type: "audio/wav" }), "Recording");
      say("record-state", "Recorded. Listen to it below; record again to replace it.");
    } catch (err) {
      say("record-state", `The recording could not be used: ${err.message}`, "error");
    }
  });
  state.recorder = recorder;
  $("record").setAttribute("aria-pressed", "true");
  recorder.start(250);
}

// The browser records in its own compressed format; the server reads WAV, so decode and re-encode.
async function toWav(blob) {
  const context = new AudioContext();
  try {
    const audio = await context.decodeAudioData(await blob.arrayBuffer());
    const mono = new Float32Array(audio.length);
    for (let c = 0; c < audio.numberOfChannels; c++) {
      const data = audio.getChannelData(c);
      for (let i = 0; i < data.length; i++) mono[i] += data[i] / audio.numberOfChannels;
    }
    return encodeWav(mono, audio.sampleRate);
  } finally {
    context.close();
  }
}

function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return buffer;
}

// -- speaking: play the stream as it arrives, then keep the whole clip in the player -------------

// Plays 16-bit PCM pieces through Web Audio into the page's <audio> element as they arrive; at the
// end the element gets the complete recording (a WAV), so it can be replayed or saved.
class StreamPlayer {
  constructor(element, rate) {
    this.element = element;
    this.rate = rate;
    this.context = new AudioContext();
    this.destination = this.context.createMediaStreamDestination();
    this.next = 0;
    this.pieces = [];
    this.firstSoundAt = null;
    element.pause();
    element.removeAttribute("src");
    element.srcObject = this.destination.stream;
    element.play().catch(() => {});
  }

  push(samples) {
    if (!samples.length) return;
    this.pieces.push(samples);
    const buffer = this.context.createBuffer(1, samples.length, this.rate);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.destination);
    const at = Math.max(this.next, this.context.currentTime + 0.05);
    source.start(at);
    this.next = at + buffer.duration;
    if (this.firstSoundAt === null) this.firstSoundAt = performance.now();
  }

  async finish() {
    const left = this.next - this.context.currentTime;
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left * 1000 + 100));
    const total = this.pieces.reduce((n, p) => n + p.length, 0);
    const all = new Float32Array(total);
    let offset = 0;
    for (const piece of this.pieces) { all.set(piece, offset); offset += piece.length; }
    this.element.srcObject = null;
    if (this.element.dataset.url) URL.revokeObjectURL(this.element.dataset.url);
    this.element.dataset.url = URL.createObjectURL(new Blob([encodeWav(all, this.rate)], { type: "audio/wav" }));
    this.element.src = this.element.dataset.url;
    this.element.load();
    await this.context.close();
    return total / this.rate;
  }
}

async function speak(event) {
  event.preventDefault();
  const button = $("speak");
  const text = $("text").value.trim();
  const voice = $("voice").value;
  const form = new FormData();
  form.append("text", text);
  try {
    if (voice === NEW_VOICE) {
      if (!state.clip) throw new Error("Choose a saved voice, or add a clip in the form above.");
      form.append("audio", state.clip, state.clip.name || "clip.wav");
      form.append("transcript", $("transcript").value);
      form.append("speed", $("speed").value);
    } else {
      form.append("voice", voice);
    }
  } catch (err) {
    say("speak-message", err.message, "error");
    return;
  }
  button.disabled = true;
  say("speak-message", "Synthesizing…");
  const clicked = performance.now();
  let player = null;
  try {
    const response = await api("api/speak", { method: "POST", body: form });
    const requestId = Number(response.headers.get("X-Request-Id"));
    const spokenText = decodeURIComponent(response.headers.get("X-Spoken-Text") || "");
    $("spoken-text").textContent = spokenText ? `Spoken as: ${spokenText}` : "";
    const reader = response.body.getReader();
    let header = new Uint8Array(0);
    let carry = null;   // an odd byte left over between reads
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let bytes = value;
      if (header.length < 44) {
        const need = 44 - header.length;
        header = concat(header, bytes.subarray(0, need));
        bytes = bytes.subarray(need);
        if (header.length < 44) continue;
        const view = new DataView(header.buffer);
        player = new StreamPlayer($("spoken"), view.getUint32(24, true));
      }
      if (carry) { bytes = concat(carry, bytes); carry = null; }
      if (bytes.length % 2) { carry = bytes.slice(bytes.length - 1); bytes = bytes.subarray(0, bytes.length - 1); }
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const samples = new Float32Array(bytes.length / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2, true) / 32768;
      player.push(samples);
      if (samples.length) say("speak-message", "Playing while the rest is synthesized…");
    }
    if (!player) throw new Error("The server sent no audio.");
    const heard = (player.firstSoundAt - clicked) / 1000;
    const seconds = await player.finish();
    await showRequestSpeed(requestId, seconds, heard);
  } catch (err) {
    say("speak-message", err instanceof ApiError ? err.message : `Speech stopped: ${err.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

async function showRequestSpeed(id, seconds, heard) {
  const status = await refreshStatus();
  const record = status && status.recent.find((r) => r.id === id);
  if (record && record.ttfa !== null) {
    const source = record.cached === 0 ? "" : record.cached === record.segments
      ? " From the audio cache: said before, not synthesized again."
      : ` ${record.cached} of ${record.segments} sentences from the audio cache.`;
    say("speak-message",
      `${seconds.toFixed(1)} s of speech. Time to first audio ${record.ttfa.toFixed(2)} s on the server ` +
      `(${heard.toFixed(2)} s until the page played it); real-time factor ${record.rtf.toFixed(2)}.` + source);
  } else {
    say("speak-message", `${seconds.toFixed(1)} s of speech; the page played it after ${heard.toFixed(2)} s.`);
  }
}

// -- start ----------------------------------------------------------------------------------------

async function unlock(event) {
  event.preventDefault();
  try {
    await api("api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: $("token").value }),
    });
    $("token-box").hidden = true;
    await start();
  } catch (err) {
    window.alert(err.message);
  }
}

async function start() {
  await refreshStatus();
  await refreshVoices();
}

document.addEventListener("DOMContentLoaded", () => {
  $("voice-form").addEventListener("submit", saveVoice);
  $("speak-form").addEventListener("submit", speak);
  $("token-form").addEventListener("submit", unlock);
  $("record").addEventListener("click", toggleRecording);
  $("cancel-edit").addEventListener("click", () => { stopEditing(); say("form-message", ""); });
  $("audio-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) {
      say("record-state", "Or record from your microphone; press Record again to stop.");
      setClip(file, `File ${file.name}`);
    }
  });
  $("transcript").addEventListener("input", scheduleCheck);
  setInterval(refreshStatus, 5000);
  start();
});
