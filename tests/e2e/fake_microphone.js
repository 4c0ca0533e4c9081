// Playwright init script: a microphone that "says" a real recording of the digit the page prompts.
//
// navigator.mediaDevices.getUserMedia is replaced by a MediaStream from a 16 kHz AudioContext
// (MediaStreamAudioDestinationNode). Whenever the page starts a new take (the prompt box's data-take
// changes while its data-state is "listening"), the WAV for the prompted data-digit is fetched from
// /__e2e__/audio (the test answers it with page.route: the corpus file resampled to 16 kHz by
// verification.features, as float32) and played into that stream after a short silence. Everything downstream (resampling, framing, Meyda, end-pointing, the POST) is the page's.
(() => {
  const LEAD_SECONDS = 0.25;
  // Captured now: a test may replace window.AudioContext afterwards (e.g. to ignore sampleRate).
  const NativeAudioContext = window.AudioContext;
  const log = { constraints: [], played: [], errors: [] };
  window.__fakeMic = log;
  let ctx = null;
  let dest = null;
  let lastTake = null;

  function context() {
    if (!ctx) ctx = new NativeAudioContext({ sampleRate: 16000 });
    return ctx;
  }

  // No mediaDevices (insecure context, or a test removing it): nothing to replace.
  if (!navigator.mediaDevices) return;
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    log.constraints.push(JSON.parse(JSON.stringify(constraints)));
    // A test may set window.__fakeMicMode = "deny" (another init script) to refuse permission.
    if (window.__fakeMicMode === "deny") throw new DOMException("Permission denied", "NotAllowedError");
    const c = context();
    await c.resume();
    // A fresh destination per call: the page stops the tracks it was given when it closes.
    dest = c.createMediaStreamDestination();
    dest.channelCount = 1;
    return dest.stream;
  };

  // WAV (16-bit PCM, or 32-bit float as the test serves it) -> mono AudioBuffer at the file's rate.
  // Not decodeAudioData: Chromium's decoder divides positive 16-bit samples by 32767, which alone
  // moves the features by ~3e-5 and would blur what the parity test measures.
  function wavToBuffer(bytes, c) {
    const view = new DataView(bytes);
    let offset = 12;
    let format = 0;
    let rate = 0;
    let channels = 0;
    let bits = 0;
    while (offset + 8 <= view.byteLength) {
      const id = String.fromCharCode(...new Uint8Array(bytes, offset, 4));
      const size = view.getUint32(offset + 4, true);
      if (id === "fmt ") {
        format = view.getUint16(offset + 8, true);
        channels = view.getUint16(offset + 10, true);
        rate = view.getUint32(offset + 12, true);
        bits = view.getUint16(offset + 22, true);
      } else if (id === "data") {
        const float = format === 3 && bits === 32;
        if (!float && !(format === 1 && bits === 16)) {
          throw new Error(`unsupported WAV format ${format}/${bits} bits`);
        }
        const width = bits / 8;
        const n = Math.floor(Math.min(size, view.byteLength - offset - 8) / (width * channels));
        const buffer = c.createBuffer(1, n, rate);
        const out = buffer.getChannelData(0);
        for (let i = 0; i < n; i++) {
          let acc = 0;
          for (let ch = 0; ch < channels; ch++) {
            const at = offset + 8 + width * (i * channels + ch);
            acc += float ? view.getFloat32(at, true) : view.getInt16(at, true) / 32768;
          }
          out[i] = acc / channels;
        }
        return buffer;
      }
      offset += 8 + size + (size % 2);
    }
    throw new Error("no data chunk in WAV");
  }

  async function play(digit, take) {
    try {
      const response = await fetch(`/__e2e__/audio?digit=${digit}&take=${take}`);
      if (!response.ok) throw new Error(`audio ${response.status}`);
      const name = response.headers.get("x-recording") || "";
      const c = context();
      // The test serves 16 kHz audio; a buffer at another rate would be resampled by the source
      // node (linear interpolation in Chromium, unlike a real microphone path).
      const buffer = wavToBuffer(await response.arrayBuffer(), c);
      const source = c.createBufferSource();
      source.buffer = buffer;
      source.connect(dest);
      const when = c.currentTime + LEAD_SECONDS;
      source.start(when);
      log.played.push({ digit, take, name, seconds: buffer.duration, rate: c.sampleRate, fileRate: buffer.sampleRate });
    } catch (err) {
      log.errors.push(String(err));
    }
  }

  function check(box) {
    const take = box.dataset.take;
    if (box.dataset.state !== "listening" || take === lastTake || !dest) return;
    lastTake = take;
    play(box.dataset.digit, take);
  }

  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.target.id === "prompt") check(m.target);
    }
  }).observe(document, {
    subtree: true,
    attributes: true,
    attributeFilter: ["data-take", "data-state"],
  });
})();
