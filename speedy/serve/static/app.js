// OpenSpeedy page: fills emotions from /voices, posts /tts, plays and offers the WAV for download.
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

  async function synthesize() {
    const body = {
      text: text.value, emotion: $("emotion").value, speed: parseFloat($("speed").value),
      pitch: parseFloat($("pitch").value), energy: parseFloat($("energy").value),
    };
    if (!body.text.trim()) { setStatus("请输入要合成的文本。", true); return; }
    btn.disabled = true; btn.textContent = "合成中…"; setStatus("正在合成，请稍候…");
    const t0 = performance.now();
    try {
      const r = await fetch("/tts", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      if (!r.ok) {
        let detail = null; try { detail = await r.json(); } catch (e) { /* not JSON */ }
        setStatus(zhError(r.status, detail), true); return;
      }
      const blob = await r.blob();
      if (lastUrl) URL.revokeObjectURL(lastUrl);
      lastUrl = URL.createObjectURL(blob);
      player.src = lastUrl;
      dl.href = lastUrl; dl.classList.remove("disabled"); dl.setAttribute("aria-disabled", "false");
      setStatus("合成完成，用时 " + ((performance.now() - t0) / 1000).toFixed(2) + " 秒。");
      player.play().catch(() => {});
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
  updateCount();
  loadVoices();
})();
