// streamsep live monitor: spectrograms, audio, levels, gaps and status from /ws
// (wire format: streamsep/web/frames.py, docs/web.md). Plain JS, no build step.
"use strict";

const W = 600;                 // canvas columns (one spectrogram column per pixel)
const STALL_MS = 3000;         // no message for this long: "no data"
const $ = (id) => document.getElementById(id);

const ssep = window.ssep = {   // state, also read by the tests
  stems: [], meta: {}, gaps: [], events: [], detections: [], latencies: [], columns: {}, starts: 0, ends: 0,
  msPerPx: null, tRight: null, lastMessage: 0, dropped: 0, seqHoles: 0, wsOpens: 0,
  dbMin: -120, dbMax: -20, audioRate: 16000, stem: null, audio: null,
  xAt(tMs) { return W - 1 - Math.round((this.tRight - tMs) / this.msPerPx); },
  timeAt(x) { return this.tRight - (W - 1 - x) * this.msPerPx; },
};

// -- colour scale ------------------------------------------------------------------------------
const LUT = (() => {   // dark blue -> purple -> orange -> yellow (perceptually ordered)
  const stops = [[0, 0, 0, 4], [0.25, 60, 15, 110], [0.5, 180, 50, 100], [0.75, 250, 140, 40],
                 [1, 252, 255, 164]];
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const v = i / 255; let k = 0;
    while (k < stops.length - 2 && v > stops[k + 1][0]) k++;
    const [a, b] = [stops[k], stops[k + 1]]; const f = (v - a[0]) / (b[0] - a[0]);
    for (let c = 0; c < 3; c++) lut[i * 4 + c] = a[c + 1] + f * (b[c + 1] - a[c + 1]);
    lut[i * 4 + 3] = 255;
  }
  return lut;
})();
(() => { const c = $("colorbar").getContext("2d"); const img = c.createImageData(256, 1);
  img.data.set(LUT); for (let y = 0; y < 8; y++) c.putImageData(img, 0, y); })();

const canvases = { mix: $("spec-mix"), stem: $("spec-stem"), timeline: $("timeline"),
                   activity: $("activity") };
const ctx = {}; for (const k in canvases) ctx[k] = canvases[k].getContext("2d", { willReadFrequently: true });

function clearAll() { for (const k in ctx) ctx[k].clearRect(0, 0, W, canvases[k].height); ssep.tRight = null; }

function scrollTo(tMs) {   // advance the shared time axis so that tMs is at the right edge
  if (ssep.tRight === null || tMs < ssep.tRight - W * ssep.msPerPx * 4) {
    clearAll(); ssep.tRight = tMs; drawTimeAxis();
    for (const d of ssep.detections) mark(d.start_ms, d.end_ms, "#3c3", "activity");
    return;
  }
  const dx = Math.round((tMs - ssep.tRight) / ssep.msPerPx);
  if (dx <= 0) return;
  ssep.tRight += dx * ssep.msPerPx;
  for (const k in ctx) {
    const c = ctx[k], h = canvases[k].height;
    if (dx < W) {   // "copy": transparent pixels move too (the timeline strip has them)
      c.globalCompositeOperation = "copy"; c.drawImage(canvases[k], -dx, 0);
      c.globalCompositeOperation = "source-over";
    }
    c.clearRect(Math.max(0, W - dx), 0, Math.min(dx, W), h);
  }
  drawTimeAxis();
}

function drawColumns(panel, t0, n, bins, data) {
  const canvas = canvases[panel], c = ctx[panel];
  if (canvas.height !== bins) { canvas.height = bins; }
  const dt = ssep.meta[panel === "mix" ? "mix" : ssep.stem].column_ms;
  scrollTo(t0 + (n - 1) * dt);
  const img = c.createImageData(1, bins);
  for (let j = 0; j < n; j++) {
    const x = ssep.xAt(t0 + j * dt);
    if (x < 0 || x >= W) continue;
    for (let b = 0; b < bins; b++) {
      const v = data[j * bins + b], y = bins - 1 - b;
      img.data.set(LUT.subarray(v * 4, v * 4 + 4), y * 4);
    }
    c.putImageData(img, x, 0);
  }
  ssep.columns[panel] = (ssep.columns[panel] || 0) + n;
}

function mark(t0, t1, colour, strip = "timeline") {   // a span on a strip under the plots
  if (ssep.tRight === null) return;
  if (t1 > ssep.tRight) scrollTo(t1);
  const x0 = Math.max(0, ssep.xAt(t0)), x1 = Math.min(W - 1, ssep.xAt(t1));
  if (x1 < 0 || x0 >= W) return;
  ctx[strip].fillStyle = colour;
  ctx[strip].fillRect(x0, 0, Math.max(1, x1 - x0 + 1), canvases[strip].height);
}

function utc(ms, millis) {
  const s = new Date(ms).toISOString();
  return millis ? s.slice(11, 23) : s.slice(11, 19);
}

function drawTimeAxis() {
  const axis = $("taxis"); if (ssep.tRight === null) return;
  const span = W * ssep.msPerPx, step = span > 60000 ? 15000 : span > 20000 ? 5000 : 2000;
  const t0 = ssep.timeAt(0); let html = "";
  for (let t = Math.ceil(t0 / step) * step; t <= ssep.tRight; t += step) {
    html += `<span style="left:${(100 * ssep.xAt(t) / W).toFixed(2)}%">${utc(t)}</span>`;
  }
  axis.innerHTML = html;
}

function drawFreqAxis(id, maxHz) {
  const el = $(id); const khz = maxHz / 1000;
  const step = khz > 16 ? 5 : khz > 6 ? 2 : 1; let html = "";
  for (let f = 0; f <= khz + 1e-9; f += step) {
    html += `<span style="top:${(100 * (1 - f / khz)).toFixed(1)}%">${f}</span>`;
  }
  el.innerHTML = html;
}

function logEvent(text, cls) {
  ssep.events.push(text);
  const li = document.createElement("li"); li.textContent = text; if (cls) li.className = cls;
  const list = $("events"); list.prepend(li);
  while (list.children.length > 50) list.lastChild.remove();
}

function setConn(text, cls) { const b = $("conn"); b.textContent = text; b.className = "badge " + (cls || ""); }

// -- messages ----------------------------------------------------------------------------------
function panelOf(stem) { return stem === "mix" ? "mix" : stem === ssep.stem ? "stem" : null; }

function onStream(m) {
  ssep.meta[m.stem] = m; ssep.stems[m.index] = m.stem;
  if (!ssep.stem && m.stem !== "mix") chooseStem(m.stem.includes("orca") ? m.stem : m.stem);
  else if (m.stem.includes("orca") && !ssep.stem.includes("orca")) chooseStem(m.stem);
  refreshStemSelect();
  if (ssep.msPerPx === null) ssep.msPerPx = m.column_ms;
  const panel = panelOf(m.stem);
  if (panel) drawFreqAxis(panel === "mix" ? "faxis-mix" : "faxis-stem", m.max_hz);
  if (m.event === "start") {
    ssep.starts++;
    if (ssep.lastStart !== m.time_ms) {
      ssep.lastStart = m.time_ms;
      logEvent(`${utc(m.time_ms, true)} stream start (${m.sample_rate} Hz)`);
      mark(m.time_ms, m.time_ms + ssep.msPerPx, "#39f");
    }
    setConn("live", "live");
  } else if (m.event === "end") {
    ssep.ends++;
    if (ssep.lastEnd !== m.time_ms) {
      ssep.lastEnd = m.time_ms;
      logEvent(`stream ended`);
      if (ssep.tRight !== null) mark(ssep.tRight, ssep.tRight, "#999");
    }
    setConn("ended", "ended");
  }
}

function onGap(m) {
  const entry = { stem: m.stem, kind: m.kind, time_ms: m.time_ms, seconds: m.seconds,
                  n_samples: m.n_samples, first_sample: m.first_sample };
  ssep.gaps.push(entry);
  mark(m.time_ms, m.time_ms + m.seconds * 1000, m.kind === "lost" ? "#f33" : "#fa3");
  if (m.stem === "mix" || !ssep.meta.mix) {
    logEvent(`${utc(m.time_ms, true)} ${m.n_samples} samples ${m.kind} (${m.seconds.toFixed(3)} s)`, m.kind);
  }
}

function onDetection(b) {   // an orca activity event (topic "events"; sent after its end)
  if (ssep.detections.some((d) => d.id === b.id && d.sequence === b.sequence)) return;  // replayed
  const d = { id: b.id, sequence: b.sequence, start_index: b.start_index, end_index: b.end_index,
              start_ms: b.start_time_ns / 1e6, end_ms: b.end_time_ns / 1e6,
              peak_score_db: b.peak_score_db, band_hz: b.band_hz };
  ssep.detections.push(d);
  if (ssep.detections.length > 200) ssep.detections.shift();
  mark(d.start_ms, d.end_ms, "#3c3", "activity");
  let level = `${b.peak_level_dbfs.toFixed(1)} dBFS`;
  if (b.calibrated && b.peak_level_db_re_1upa !== null) level += `, ${b.peak_level_db_re_1upa.toFixed(1)} dB re 1 µPa`;
  const band = b.band_hz.map((f) => (f / 1000).toFixed(1)).join("-");
  const text = `${utc(d.start_ms, true)} orca activity ${b.duration_seconds.toFixed(1)} s, `
    + `score ${b.peak_score_db.toFixed(1)} dB, peak ${level}, ${band} kHz`;
  logEvent(text, "detection");
  $("st-orca").textContent = `${new Date(d.start_ms).toISOString().slice(0, 19).replace("T", " ")} UTC`
    + ` (${b.duration_seconds.toFixed(1)} s)`;
}

function levelText(l, calibrated) {
  let s = `${l.rms_dbfs.toFixed(1)} dBFS rms, ${l.peak_dbfs.toFixed(1)} peak`;
  if (calibrated && l.rms_db_re_1upa !== undefined) s += ` · ${l.rms_db_re_1upa.toFixed(1)} dB re 1 µPa`;
  return s;
}

function onLevels(body) {
  for (const [panel, stem] of [["mix", "mix"], ["stem", ssep.stem]]) {
    const l = body.levels && body.levels[stem]; if (!l) continue;
    $(`lv-${panel}`).textContent = levelText(l, body.calibrated);
    $(`lv-${panel}-bar`).style.width = `${Math.max(0, Math.min(100, (l.rms_dbfs + 80) / 80 * 100))}%`;
  }
}

function onStatus(body) {
  $("st-state").textContent = body.state || "–";
  const lat = body.latency_seconds; $("st-latency").textContent = lat !== undefined ? `${lat.toFixed(3)} s` : "–";
  const rtf = body.real_time_factor; $("st-rtf").textContent = rtf !== undefined && rtf !== null ? rtf.toFixed(3) : "–";
  const p = body.publisher || {};
  $("st-subs").textContent = p.active_subscriptions !== undefined ? p.active_subscriptions : "–";
  if (body.state === "ended") setConn("ended", "ended");
}

let expectedSeq = null;
function checkSeq(seq) {
  if (expectedSeq !== null && seq !== expectedSeq) ssep.seqHoles += seq - expectedSeq;
  expectedSeq = seq + 1;
}

function onBinary(buf) {
  const v = new DataView(buf);
  const kind = v.getUint8(0), index = v.getUint8(1), bins = v.getUint16(2, true);
  const count = v.getUint32(4, true); checkSeq(v.getUint32(8, true));
  const t0 = v.getFloat64(16, true), tEnd = v.getFloat64(24, true);
  const stem = ssep.stems[index];
  const now = Date.now(); ssep.latencies.push(now - tEnd);
  if (ssep.latencies.length > 2000) ssep.latencies.splice(0, 1000);
  if (kind === 1) {
    const panel = panelOf(stem);
    if (panel && ssep.meta[stem]) drawColumns(panel, t0, count, bins, new Uint8Array(buf, 32, count * bins));
  } else if (kind === 2 && ssep.audio) {
    const pcm = new Int16Array(buf.slice(32, 32 + count * 2));
    const f = new Float32Array(count); for (let i = 0; i < count; i++) f[i] = pcm[i] / 32767;
    ssep.audio.push(stem === "mix" ? "dry" : "wet", stem, f);
  }
}

function onText(text) {
  const m = JSON.parse(text); checkSeq(m.seq);
  switch (m.type) {
    case "hello": ssep.audioRate = m.audio_rate; ssep.dbMin = m.db_min; ssep.dbMax = m.db_max;
      $("db-min").textContent = m.db_min; $("db-max").textContent = m.db_max; break;
    case "stream": onStream(m); break;
    case "gap": onGap(m); break;
    case "levels": onLevels(m.body); break;
    case "status": onStatus(m.body); break;
    case "detection": onDetection(m.body); break;
    case "client": ssep.dropped = m.dropped; $("st-drops").textContent = m.dropped; break;
  }
}

// -- connection --------------------------------------------------------------------------------
let ws = null, retryMs = 500;
function connect() {
  const token = new URLSearchParams(location.search).get("token");
  const url = new URL("ws", location.href); url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  ws = new WebSocket(url); ws.binaryType = "arraybuffer"; expectedSeq = null;
  ws.onopen = () => { ssep.wsOpens++; retryMs = 500; setConn("waiting for stream");
    if (ssep.wsOpens > 1) logEvent("reconnected to the server"); sendAudioWanted(); };
  ws.onmessage = (e) => { ssep.lastMessage = Date.now();
    if (typeof e.data === "string") onText(e.data); else onBinary(e.data); };
  ws.onclose = () => { setConn("server unreachable, reconnecting", "down");
    setTimeout(connect, retryMs); retryMs = Math.min(retryMs * 2, 10000); };
}

function sendAudioWanted() {
  if (!ws || ws.readyState !== 1) return;
  const stems = ssep.audio ? ["mix", ssep.stem].filter(Boolean) : [];
  ws.send(JSON.stringify({ type: "audio", stems }));
}

setInterval(() => {
  $("clock").textContent = new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC";
  if (ws && ws.readyState === 1 && ssep.lastMessage && Date.now() - ssep.lastMessage > STALL_MS
      && $("conn").textContent !== "ended") setConn("no data", "stalled");
  const l = ssep.latencies.slice(-50).sort((a, b) => a - b);
  if (l.length) $("st-net").textContent = `${(l[l.length >> 1] / 1000).toFixed(3)} s`;
}, 500);

// -- stems -------------------------------------------------------------------------------------
function refreshStemSelect() {
  const sel = $("stem-select"); const names = ssep.stems.filter((s) => s && s !== "mix");
  if (sel.options.length === names.length) return;
  sel.innerHTML = names.map((s) => `<option${s === ssep.stem ? " selected" : ""}>${s}</option>`).join("");
}
function chooseStem(stem) {
  ssep.stem = stem; ctx.stem.clearRect(0, 0, W, canvases.stem.height);
  if (ssep.meta[stem]) drawFreqAxis("faxis-stem", ssep.meta[stem].max_hz);
  if (ssep.audio) ssep.audio.reset();
  sendAudioWanted();
}
$("stem-select").onchange = (e) => chooseStem(e.target.value);

// -- audio -------------------------------------------------------------------------------------
async function startAudio() {
  const ac = new AudioContext({ sampleRate: ssep.audioRate, latencyHint: "playback" });
  await ac.audioWorklet.addModule("static/worklet.js");
  const node = new AudioWorkletNode(ac, "ssep-player", { outputChannelCount: [1],
    processorOptions: { rate: ssep.audioRate, target: Number($("jitter").value) } });
  const hp = new BiquadFilterNode(ac, { type: "highpass", frequency: 10 });
  const lp = new BiquadFilterNode(ac, { type: "lowpass", frequency: ssep.audioRate / 2 });
  const analyser = new AnalyserNode(ac, { fftSize: 4096, smoothingTimeConstant: 0 });
  const gain = new GainNode(ac, { gain: 1 });
  node.connect(hp).connect(lp).connect(analyser).connect(gain).connect(ac.destination);
  const a = ssep.audio = { ac, node, hp, lp, analyser, gain, muted: false, stats: {},
    push(role, stem, samples) { node.port.postMessage({ role, samples }, [samples.buffer]); },
    reset() { node.port.postMessage({ reset: true }); },
  };
  node.port.onmessage = (e) => { a.stats = e.data;
    $("au-state").textContent = `buffer ${(e.data.buffered_ms / 1000).toFixed(2)} s · underruns ${e.data.underruns} · skipped ${e.data.skipped}`; };
  applyControls(); sendAudioWanted(); await ac.resume();
  $("play").textContent = "■ Stop"; $("mute").disabled = false;
}
function stopAudio() {
  ssep.audio.ac.close(); ssep.audio = null; sendAudioWanted();
  $("play").textContent = "▶ Listen"; $("mute").disabled = true;
}
function applyControls() {
  const a = ssep.audio; const wet = Number($("wetdry").value), g = Number($("gain").value);
  const hp = Number($("hp").value), lp = Number($("lp").value);
  $("gain-db").textContent = `${g} dB`;
  $("hp-hz").textContent = hp > 0 ? `${hp} Hz` : "off";
  $("lp-hz").textContent = lp < ssep.audioRate / 2 ? `${lp} Hz` : "off";
  if (!a) return;
  a.node.port.postMessage({ wet, target: Number($("jitter").value) });
  a.hp.frequency.value = Math.max(10, hp);
  a.lp.frequency.value = Math.min(lp, ssep.audioRate / 2 - 1);
  a.gain.gain.value = a.muted ? 0 : Math.pow(10, g / 20);
}
for (const id of ["wetdry", "gain", "hp", "lp", "jitter"]) $(id).oninput = applyControls;
$("play").onclick = () => (ssep.audio ? stopAudio() : startAudio());
$("mute").onclick = () => { ssep.audio.muted = !ssep.audio.muted;
  $("mute").textContent = ssep.audio.muted ? "Unmute" : "Mute"; applyControls(); };
ssep.startAudio = startAudio;

connect();
