// OpenSpeedy page: fills emotions from /voices, streams /tts/stream into Web Audio so playback starts with
// the first chunk, then offers the whole WAV (built from the same PCM) in the player and for download.
// window.speedyStats records click → first sound (the audio clock passing the first chunk's start).
(function () {
  const $ = (id) => document.getElementById(id);
  const text = $("text"), count = $("count"), btn = $("synth"), statusEl = $("status");
  const player = $("player"), dl = $("download");
  let maxChars = 500, lastUrl = null;

  const FIELD_ZH = { text: "文本", speed: "语速", pitch: "音高", energy: "音量", emotion: "情感", voice: "音色" };

  function setStatus(msg, isError) {
    statusEl.textContent = msg;
    statusEl.classList.toggle("error", !!isError);
  }
  function updateCount() {
    if (text.value.length > maxChars) text.value = text.value.slice(0, maxChars);
    count.textContent = text.value.length;
    count.parentElement.classList.toggle("full", text.value.length >= maxChars);
  }
  function bindSlider(id, fmt) {
    const el = $(id), out = $(id + "-out");
    const show = () => { out.textContent = fmt(parseFloat(el.value)); };
    el.addEventListener("input", show); show();
  }
  function zhError(status, body) {
    const err = (body && body.error) || {};
    const field = FIELD_ZH[err.field] ? FIELD_ZH[err.field] + "：" : "";
    if (status === 503) return "服务器繁忙，请稍后再试。";
    if (status === 413) return "请求内容过大。";
    if (status === 401) return "需要有效的 API 密钥。";
    if (err.message && err.message.indexOf("nothing to say") >= 0) return "文本中没有可朗读的内容，请输入中文、字母或数字。";
    if (status === 422 || status === 400) return "输入有误 — " + field + (err.message || "请检查参数");
    return "合成失败（" + status + "）：" + (err.message || "未知错误");
  }

  async function loadVoices() {
    try {
      const r = await fetch("/voices");
      const v = await r.json();
      maxChars = v.max_chars || 500;
      text.maxLength = maxChars;
      $("family").textContent = v.family;
      $("rate").textContent = v.sample_rate;
      const voiceSel = $("voice");
      voiceSel.innerHTML = "";
      for (const voice of v.voices) {
        const o = document.createElement("option");
        o.value = voice.name; o.textContent = voice.name; voiceSel.appendChild(o);
      }
      $("voice-control").hidden = v.voices.length < 2;  // a one-voice model needs no choice
      const sel = $("emotion");
      sel.innerHTML = "";
      for (const name of (v.voices[0] && v.voices[0].emotions) || ["中性"]) {
        const o = document.createElement("option");
        o.value = name; o.textContent = name; sel.appendChild(o);
      }
    } catch (e) {
      setStatus("无法读取音色列表：" + e, true);
    }
  }

  // The AudioContext is made once, before any click: constructing one starts the browser's audio thread,
  // which took 0.9 s of the click → first sound time on a loaded machine when it was done in the click.
  // Browsers keep it suspended until a user gesture; the first press (pointerdown, key) resumes it.
  let audioCtx = null;
  function audio() {
    if (!audioCtx) {
      try { audioCtx = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { return null; }
    }
    if (audioCtx.state !== "running") audioCtx.resume().catch(() => {});
    return audioCtx;
  }

  function wavBlob(pcmParts, sampleRate) {
    // 16-bit mono PCM parts (Uint8Array) → a WAV Blob with the real lengths in its header.
    const bytes = pcmParts.reduce((n, p) => n + p.length, 0);
    const h = new DataView(new ArrayBuffer(44));
    const str = (o, s) => { for (let i = 0; i < s.length; i++) h.setUint8(o + i, s.charCodeAt(i)); };
    str(0, "RIFF"); h.setUint32(4, 36 + bytes, true); str(8, "WAVEfmt "); h.setUint32(16, 16, true);
    h.setUint16(20, 1, true); h.setUint16(22, 1, true); h.setUint32(24, sampleRate, true);
    h.setUint32(28, sampleRate * 2, true); h.setUint16(32, 2, true); h.setUint16(34, 16, true);
    str(36, "data"); h.setUint32(40, bytes, true);
    return new Blob([h.buffer, ...pcmParts], { type: "audio/wav" });
  }

  function player16(ctx, sampleRate, stats) {
    // Schedules int16 PCM bytes back to back on the audio clock; returns push(bytes).
    let next = 0, carry = null;
    return function push(bytes) {
      if (carry) {  // an odd byte left from the previous read: the first half of a sample
        const m = new Uint8Array(carry.length + bytes.length);
        m.set(carry); m.set(bytes, carry.length); bytes = m; carry = null;
      }
      if (bytes.length % 2) { carry = bytes.slice(bytes.length - 1); bytes = bytes.slice(0, bytes.length - 1); }
      const n = bytes.length / 2;
      if (!n) return;
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
      const buf = ctx.createBuffer(1, n, sampleRate), ch = buf.getChannelData(0);
      for (let i = 0; i < n; i++) ch[i] = view.getInt16(2 * i, true) / 32768;
      const src = ctx.createBufferSource();
      src.buffer = buf; src.connect(ctx.destination);
      // 10 ms ahead of the clock, so the first chunk starts exactly where scheduled and the next ones join it
      // sample-exactly; a late chunk starts now (a gap, not a skip)
      const start = Math.max(next, ctx.currentTime + 0.01);
      src.start(start);
      next = start + buf.duration;
      if (stats.scheduledAt === null) {
        stats.scheduledAt = performance.now();
        const watch = () => {  // first sound: the audio clock has moved past the first chunk's start
          if (ctx.currentTime > start) { stats.firstSoundAt = performance.now(); stats.played = true; }
          else requestAnimationFrame(watch);
        };
        requestAnimationFrame(watch);
      }
      stats.scheduledSeconds += buf.duration;
    };
  }

  async function synthesize() {
    const body = {
      text: text.value, emotion: $("emotion").value, voice: $("voice").value || null, speed: parseFloat($("speed").value),
      pitch: parseFloat($("pitch").value), energy: parseFloat($("energy").value),
    };
    if (!body.text.trim()) { setStatus("请输入要合成的文本。", true); return; }
    const stats = { clickAt: performance.now(), fetchAt: null, headersAt: null, firstBytesAt: null, scheduledAt: null,
                    firstSoundAt: null, doneAt: null, played: false, scheduledSeconds: 0,
                    ctxWasRunning: !!audioCtx && audioCtx.state === "running" };
    window.speedyStats = stats;
    btn.disabled = true; btn.textContent = "合成中…"; setStatus("正在合成，边合成边播放…");
    player.pause();
    stats.fetchAt = performance.now();
    const request = fetch("/tts/stream", { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(body) });  // sent first, then the audio set-up
    const ctx = audio();  // inside the click: allowed to start
    try {
      const r = await request;
      stats.headersAt = performance.now();
      if (!r.ok) {
        let detail = null; try { detail = await r.json(); } catch (e) { /* not JSON */ }
        setStatus(zhError(r.status, detail), true); return;
      }
      const reader = r.body.getReader(), parts = [];
      let header = new Uint8Array(0), push = null, sampleRate = 24000;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let bytes = value;
        if (stats.firstBytesAt === null) stats.firstBytesAt = performance.now();
        if (!push) {  // the 44-byte streaming WAV header comes first; its sample rate drives playback
          const m = new Uint8Array(header.length + bytes.length); m.set(header); m.set(bytes, header.length);
          if (m.length < 44) { header = m; continue; }
          sampleRate = new DataView(m.buffer, m.byteOffset, 44).getUint32(24, true);
          push = player16(ctx, sampleRate, stats);
          bytes = m.slice(44);
        }
        if (bytes.length) { parts.push(bytes); push(bytes); }
      }
      stats.doneAt = performance.now();
      if (lastUrl) URL.revokeObjectURL(lastUrl);
      lastUrl = URL.createObjectURL(wavBlob(parts, sampleRate));
      player.src = lastUrl;  // the whole WAV, to replay or seek; playback already ran from the stream
      dl.href = lastUrl; dl.classList.remove("disabled"); dl.setAttribute("aria-disabled", "false");
      const first = stats.scheduledAt === null ? "" : "，首段音频 " + ((stats.scheduledAt - stats.clickAt) / 1000).toFixed(2) + " 秒";
      setStatus("合成完成，用时 " + ((performance.now() - stats.clickAt) / 1000).toFixed(2) + " 秒" + first + "。");
    } catch (e) {
      setStatus("网络错误：" + e, true);
    } finally {
      btn.disabled = false; btn.textContent = "合成语音";
    }
  }

  text.addEventListener("input", updateCount);
  bindSlider("speed", (v) => v.toFixed(2) + "×");
  bindSlider("pitch", (v) => (v > 0 ? "+" : "") + v + " 半音");
  bindSlider("energy", (v) => v.toFixed(2) + "×");
  btn.addEventListener("click", synthesize);
  audio();  // made now (suspended until a gesture where the browser requires one) …
  for (const ev of ["pointerdown", "keydown"]) document.addEventListener(ev, audio, { capture: true });  // … resumed at the first press
  updateCount();
  loadVoices();
})();
