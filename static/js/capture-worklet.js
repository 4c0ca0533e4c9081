// AudioWorklet processor of the recorder: hands the raw microphone samples (first channel) to the page
// in batches. It lives in its own file because the CSP allows only same-origin scripts (no blob: or eval).
const BATCH = 1024; // samples per message: ~64 ms at 16 kHz, few enough messages to stay cheap

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buffer = new Float32Array(BATCH);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let offset = 0;
      while (offset < channel.length) {
        const n = Math.min(channel.length - offset, BATCH - this.filled);
        this.buffer.set(channel.subarray(offset, offset + n), this.filled);
        this.filled += n;
        offset += n;
        if (this.filled === BATCH) {
          // Transfer the batch (no copy) and start a fresh one.
          this.port.postMessage(this.buffer, [this.buffer.buffer]);
          this.buffer = new Float32Array(BATCH);
          this.filled = 0;
        }
      }
    }
    return true; // keep running while the page holds the node
  }
}

registerProcessor("speakerauth-capture", CaptureProcessor);
