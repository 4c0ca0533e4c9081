// SpeakerAuth recorder: microphone -> 16 kHz samples -> our own 512/160 framing -> Meyda melBands + rms.
//
// Raw audio never leaves the page: a take is captured, cut to the spoken word by energy end-pointing,
// turned into per-frame features and only those are returned. Pitfalls this module avoids (DESIGN §3):
// - browser audio processing (echo cancellation, noise suppression, auto gain) is switched off;
// - the AudioContext is asked for 16 kHz but the rate it really runs at is checked, and the take is
//   resampled with an OfflineAudioContext when it is not 16000 (Safari ignores the option, Firefox refuses
//   to connect a microphone of another rate);
// - frames are cut here (frame i = samples[i*160 : i*160+512], full frames only) and handed one by one
//   to Meyda.extract: Meyda's analyzer with hopSize < bufferSize yields rotated copies of one block;
// - Meyda's globals (bufferSize, sampleRate, melBands, windowingFunction) are set before the first
//   extraction, because Meyda caches its mel filter bank and ignores the analyzer's melBands option.
// Meyda itself is the npm build loaded by a classic <script> (global `Meyda`).

export const CONTRACT = Object.freeze({
  sample_rate: 16000,
  frame_length: 512,
  hop_length: 160,
  window: "hamming",
  mel_bands: 40,
});

// End-pointing works on per-frame rms of the Hamming-windowed frame (exactly Meyda's `rms`), so the
// same rule can be replayed on the server's features of a WAV file (see tests/e2e/).
export const ENDPOINTING = Object.freeze({
  absoluteFloor: 0.002, // below this a frame is silence, however quiet the room (~ -54 dBFS)
  floorFactor: 3, // speech is more than 3x the room's noise floor (10th percentile of the take)
  peakFactor: 0.05, // ...and within 26 dB of the loudest frame
  maxGapFrames: 20, // pauses up to 200 ms stay inside one word ("six", "eight")
  padFrames: 15, // 150 ms kept before and after the word for weak consonants
  minSpeechFrames: 8, // shorter than ~100 ms of voice is a click, not a digit
  maxSpeechFrames: 250, // longer than 2.5 s is more than one digit
  quietPeak: 0.005, // loudest frame under ~ -46 dBFS: too quiet to model
  clipLevel: 0.99, // |sample| at or above this counts as clipped
  clipFraction: 0.002, // more than 0.2 % clipped samples in the word: distorted
});

const LIVE = Object.freeze({
  hopSeconds: 0.01,
  minHeardHops: 5, // 50 ms above the threshold before we say we hear speech
  trailingSilenceSeconds: 0.5, // stop this long after the voice ends
  noSpeechSeconds: 5,
  maxSeconds: 6,
});

const MESSAGES = {
  insecure:
    "The microphone only works on a secure page. Open this site over HTTPS " +
    "(or on localhost while developing).",
  unsupported:
    "This browser cannot record here (it lacks getUserMedia, Web Audio or AudioWorklet). " +
    "Use a current Chrome, Edge, Firefox or Safari.",
  meyda: "The audio feature library did not load. Reload the page; if it persists, tell the site admin.",
  denied:
    "Microphone access was blocked. Allow the microphone for this site (the icon in the address bar " +
    "or the browser's site settings), then try again.",
  nodevice: "No microphone was found. Connect one and try again.",
  busy: "The microphone is in use by another application or could not be started.",
  failed: "The microphone could not be started.",
  too_quiet: "We could not hear you clearly. Move closer to the microphone or speak a little louder.",
  clipped: "That was too loud and the sound distorted. Move back a little from the microphone.",
  too_short: "That was too short. Say the whole digit clearly.",
  too_long: "We heard more than one word. Say only the digit shown.",
};

export class RecorderError extends Error {
  constructor(code, detail) {
    super(MESSAGES[code] || detail || code);
    this.name = "RecorderError";
    this.code = code;
    this.detail = detail;
  }
}

/** Why recording cannot work on this page, or null when it can. */
export function environmentProblem(win = window) {
  if (!win.isSecureContext) return new RecorderError("insecure");
  const ctx = win.AudioContext || win.webkitAudioContext;
  if (!win.navigator.mediaDevices || !win.navigator.mediaDevices.getUserMedia || !ctx) {
    return new RecorderError("unsupported");
  }
  if (!win.AudioWorkletNode || !win.OfflineAudioContext) return new RecorderError("unsupported");
  if (!win.Meyda || typeof win.Meyda.extract !== "function") return new RecorderError("meyda");
  return null;
}

/** Number of full frames in `length` samples: frame i = samples[i*hop : i*hop + frame]. */
export function frameCount(length, frame = CONTRACT.frame_length, hop = CONTRACT.hop_length) {
  return length < frame ? 0 : Math.floor((length - frame) / hop) + 1;
}

// Meyda's periodic Hamming window, built the same way so our rms equals Meyda's `rms`.
function hammingWindow(size) {
  const w = new Float32Array(size);
  for (let i = 0; i < size; i++) w[i] = 0.54 - 0.46 * Math.cos(2 * Math.PI * (i / size - 1));
  return w;
}
const HAMMING = hammingWindow(CONTRACT.frame_length);

/** rms of every Hamming-windowed frame of a 16 kHz signal (Meyda's definition), as a Float64Array. */
export function frameRms(samples) {
  const n = frameCount(samples.length);
  const out = new Float64Array(n);
  const { frame_length: size, hop_length: hop } = CONTRACT;
  for (let i = 0; i < n; i++) {
    let acc = 0;
    const base = i * hop;
    for (let j = 0; j < size; j++) {
      const v = samples[base + j] * HAMMING[j];
      acc += v * v;
    }
    out[i] = Math.sqrt(acc / size);
  }
  return out;
}

function percentile(values, q) {
  if (values.length === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
}

/**
 * Energy end-pointing over per-frame rms. Frames louder than the threshold are speech; runs separated by
 * short pauses are merged; the run with the most energy is the word. Returns
 * {start, end (exclusive), threshold, peak, floor} in frames, or null when nothing rises above silence.
 */
export function findSpeech(rms, p = ENDPOINTING) {
  if (rms.length === 0) return null;
  let peak = 0;
  for (const v of rms) peak = Math.max(peak, v);
  const floor = percentile(rms, 0.1);
  const threshold = Math.max(p.absoluteFloor, p.floorFactor * floor, p.peakFactor * peak);
  let best = null;
  let run = null;
  for (let i = 0; i <= rms.length; i++) {
    const loud = i < rms.length && rms[i] > threshold;
    if (loud) {
      if (run && i - run.end <= p.maxGapFrames) {
        run.end = i + 1;
        run.energy += rms[i];
      } else {
        if (run && (!best || run.energy > best.energy)) best = run;
        run = { start: i, end: i + 1, energy: rms[i] };
      }
    }
  }
  if (run && (!best || run.energy > best.energy)) best = run;
  if (!best) return null;
  return { start: best.start, end: best.end, threshold, peak, floor };
}

/** Judge a take: null when usable, otherwise a problem code with a message in MESSAGES. */
export function assessTake(samples, speech, p = ENDPOINTING) {
  if (!speech || speech.peak < p.quietPeak) return "too_quiet";
  const length = speech.end - speech.start;
  if (length < p.minSpeechFrames) return "too_short";
  if (length > p.maxSpeechFrames) return "too_long";
  const first = speech.start * CONTRACT.hop_length;
  const last = Math.min(samples.length, (speech.end - 1) * CONTRACT.hop_length + CONTRACT.frame_length);
  let clipped = 0;
  for (let i = first; i < last; i++) if (Math.abs(samples[i]) >= p.clipLevel) clipped++;
  if (clipped > Math.max(10, p.clipFraction * (last - first))) return "clipped";
  return null;
}

export function problemMessage(code) {
  return MESSAGES[code] || code;
}

let meydaConfigured = false;
function configureMeyda() {
  const Meyda = window.Meyda;
  if (meydaConfigured && Meyda.melFilterBank && Meyda.melFilterBank.length === CONTRACT.mel_bands) {
    return Meyda;
  }
  Meyda.bufferSize = CONTRACT.frame_length;
  Meyda.sampleRate = CONTRACT.sample_rate;
  Meyda.melBands = CONTRACT.mel_bands;
  Meyda.numberOfMFCCCoefficients = 13;
  Meyda.windowingFunction = CONTRACT.window;
  // Meyda rebuilds its cached filter bank only when the size changes: drop it so our settings apply.
  Meyda.melFilterBank = undefined;
  Meyda.barkScale = undefined;
  meydaConfigured = true;
  return Meyda;
}

/** Little-endian float32 bytes of `values`, base64 (the contract's compact `*_b64` encoding). */
export function float32Base64(values) {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i], true);
  let binary = "";
  const CHUNK = 0x8000; // String.fromCharCode takes a bounded number of arguments
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

/**
 * Meyda melBands (40 per frame) and rms for frames [start, end) of a 16 kHz signal, as one
 * Float32Array of n*40 band values (frame-major) and one of n rms values.
 */
export function extractFeatures(samples, start = 0, end = frameCount(samples.length)) {
  const Meyda = configureMeyda();
  const { frame_length: size, hop_length: hop, mel_bands: bands } = CONTRACT;
  const n = Math.max(0, end - start);
  const melBands = new Float32Array(n * bands);
  const rms = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const base = (start + i) * hop;
    const frame = samples.subarray(base, base + size);
    const f = Meyda.extract(["melBands", "rms"], frame);
    melBands.set(f.melBands, i * bands);
    rms[i] = f.rms;
  }
  return { melBands, rms };
}

/** Resample a mono signal to 16 kHz with the browser's own resampler (OfflineAudioContext). */
export async function resampleTo16k(samples, rate) {
  if (rate === CONTRACT.sample_rate) return samples;
  const length = Math.ceil((samples.length * CONTRACT.sample_rate) / rate);
  const offline = new OfflineAudioContext(1, length, CONTRACT.sample_rate);
  const buffer = offline.createBuffer(1, samples.length, rate);
  buffer.copyToChannel(samples, 0);
  const source = offline.createBufferSource();
  source.buffer = buffer;
  source.connect(offline.destination);
  source.start();
  const rendered = await offline.startRendering();
  return rendered.getChannelData(0);
}

/**
 * Turn a captured take (16 kHz samples) into the contract's utterance, or a problem.
 * Returns {problem, message, frames, melBands, rms, speech, seconds}.
 */
export function processTake(samples) {
  const rmsAll = frameRms(samples);
  const speech = findSpeech(rmsAll);
  const problem = assessTake(samples, speech);
  const seconds = samples.length / CONTRACT.sample_rate;
  if (problem) return { problem, message: problemMessage(problem), speech, seconds };
  const start = Math.max(0, speech.start - ENDPOINTING.padFrames);
  const end = Math.min(rmsAll.length, speech.end + ENDPOINTING.padFrames);
  const { melBands, rms } = extractFeatures(samples, start, end);
  return { problem: null, message: "", frames: end - start, melBands, rms, speech, seconds };
}

/**
 * The JSON body of one utterance, as GET /api/v1/feature-contract/ describes it. Features travel
 * as base64 little-endian float32 (`"encoding": "float32"`): exact for Meyda's values and about a
 * third of the size of JSON number arrays.
 */
export function utterancePayload(take, digit, contract) {
  return {
    feature_version: contract.feature_version,
    sample_rate: CONTRACT.sample_rate,
    frame_length: CONTRACT.frame_length,
    hop_length: CONTRACT.hop_length,
    window: CONTRACT.window,
    encoding: "float32",
    mel_bands_b64: float32Base64(take.melBands),
    rms_b64: float32Base64(take.rms),
    digit,
  };
}

/** Null when the server's contract is the one this recorder implements, else what differs. */
export function contractMismatch(contract) {
  for (const key of Object.keys(CONTRACT)) {
    if (contract[key] !== CONTRACT[key]) {
      return `${key}: server expects ${JSON.stringify(contract[key])}, this page sends ${JSON.stringify(CONTRACT[key])}`;
    }
  }
  if (!contract.feature_version) return "feature_version missing";
  if (Array.isArray(contract.encodings) && !contract.encodings.includes("float32")) {
    return "the server does not accept float32 features";
  }
  return null;
}

function sumSquares(data, from, to) {
  let acc = 0;
  for (let i = from; i < to; i++) acc += data[i] * data[i];
  return acc;
}

/**
 * One microphone session: open() once (asks for permission), then record() one take per prompt.
 * Callbacks: onLevel(0..1) for the meter, onState("listening" | "hearing" | "processing").
 */
export class Recorder {
  constructor({ onLevel = () => {}, onState = () => {}, workletUrl } = {}) {
    this.onLevel = onLevel;
    this.onState = onState;
    this.workletUrl = workletUrl || new URL("./capture-worklet.js", import.meta.url).href;
    this.ctx = null;
    this.stream = null;
    this.take = null;
  }

  get sampleRate() {
    return this.ctx ? this.ctx.sampleRate : null;
  }

  async open() {
    const problem = environmentProblem();
    if (problem) throw problem;
    if (this.ctx) return;
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
        },
        video: false,
      });
    } catch (err) {
      const name = err && err.name;
      if (name === "NotAllowedError" || name === "SecurityError") throw new RecorderError("denied");
      if (name === "NotFoundError" || name === "OverconstrainedError") throw new RecorderError("nodevice");
      if (name === "NotReadableError" || name === "AbortError") throw new RecorderError("busy");
      throw new RecorderError("failed", String(err));
    }
    try {
      await this.connect({ sampleRate: CONTRACT.sample_rate });
    } catch (err) {
      // Firefox cannot connect a microphone to a context of another rate: use the device's rate and
      // resample each take ourselves.
      if (!err || err.name !== "NotSupportedError") {
        this.close();
        throw new RecorderError("failed", String(err));
      }
      await this.disconnect();
      try {
        await this.connect({});
      } catch (err2) {
        this.close();
        throw new RecorderError("failed", String(err2));
      }
    }
  }

  async connect(options) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    this.ctx = new Ctx(options);
    if (this.ctx.state === "suspended") await this.ctx.resume();
    await this.ctx.audioWorklet.addModule(this.workletUrl);
    this.source = this.ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.ctx, "speakerauth-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
    });
    this.node.port.onmessage = (event) => this.onChunk(event.data);
    this.source.connect(this.node);
  }

  async disconnect() {
    if (this.source) this.source.disconnect();
    if (this.node) this.node.port.onmessage = null;
    if (this.ctx) await this.ctx.close().catch(() => {});
    this.ctx = this.source = this.node = null;
  }

  close() {
    this.cancel();
    this.disconnect();
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.onLevel(0);
  }

  /** Abandon the take in progress (its promise resolves to null). */
  cancel() {
    if (this.take) {
      const { resolve } = this.take;
      this.take = null;
      resolve(null);
    }
  }

  onChunk(data) {
    const level = Math.sqrt(sumSquares(data, 0, data.length) / data.length);
    // Meter on a dB scale: -60 dBFS reads 0, 0 dBFS reads 1.
    this.onLevel(Math.max(0, Math.min(1, 1 + (20 * Math.log10(level + 1e-9)) / 60)));
    const take = this.take;
    if (!take) return;
    take.chunks.push(data);
    take.length += data.length;
    this.liveEndpoint(take, data);
  }

  liveEndpoint(take, data) {
    // Non-overlapping 10 ms hops at the context's own rate decide when to stop listening; the cut itself
    // is made afterwards on the 16 kHz frames by findSpeech().
    const hop = Math.round(this.ctx.sampleRate * LIVE.hopSeconds);
    take.pending.push(...data);
    while (take.pending.length >= hop) {
      const block = take.pending.splice(0, hop);
      take.hops.push(Math.sqrt(sumSquares(block, 0, hop) / hop));
    }
    const hops = take.hops;
    const seconds = hops.length * LIVE.hopSeconds;
    const floor = percentile(hops, 0.1);
    let peak = 0;
    for (const v of hops) peak = Math.max(peak, v);
    const threshold = Math.max(
      ENDPOINTING.absoluteFloor,
      ENDPOINTING.floorFactor * floor,
      ENDPOINTING.peakFactor * peak,
    );
    let loud = 0;
    let lastLoud = -1;
    for (let i = 0; i < hops.length; i++) {
      if (hops[i] > threshold) {
        loud++;
        lastLoud = i;
      }
    }
    const heard = loud >= LIVE.minHeardHops;
    if (heard && !take.heard) {
      take.heard = true;
      this.onState("hearing");
    }
    const trailing = (hops.length - 1 - lastLoud) * LIVE.hopSeconds;
    const done =
      (heard && trailing >= LIVE.trailingSilenceSeconds) ||
      seconds >= LIVE.maxSeconds ||
      (!heard && seconds >= LIVE.noSpeechSeconds);
    if (done) this.finish();
  }

  finish() {
    const take = this.take;
    if (!take) return;
    this.take = null;
    const samples = new Float32Array(take.length);
    let offset = 0;
    for (const chunk of take.chunks) {
      samples.set(chunk, offset);
      offset += chunk.length;
    }
    take.resolve({ samples, rate: this.ctx.sampleRate });
  }

  /**
   * Listen for one word: resolves with the processed take (see processTake) once the voice has stopped,
   * or null when cancelled. The caller builds the payload with utterancePayload().
   */
  async record() {
    if (!this.ctx) throw new RecorderError("failed", "record() before open()");
    this.cancel();
    const captured = await new Promise((resolve) => {
      this.take = { chunks: [], length: 0, pending: [], hops: [], heard: false, resolve };
      this.onState("listening");
    });
    if (!captured) return null;
    this.onState("processing");
    const samples16k = await resampleTo16k(captured.samples, captured.rate);
    const result = processTake(samples16k);
    result.captureRate = captured.rate;
    return result;
  }
}
