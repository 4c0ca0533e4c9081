#!/usr/bin/env node
// Reference features from real Meyda (npm, package.json pins 5.6.3) for the parity test.
//
// Usage: node tools/meyda/extract.mjs SIGNAL.f32 > features.json
// SIGNAL.f32: raw little-endian float32 samples of a 16 kHz mono signal. Frames are cut exactly as
// the browser recorder and verification/features.py do: frame i = signal[i*160 : i*160 + 512], full
// frames only. Prints one JSON object: {"meyda_version", "n_frames", "mel_bands": [[40 numbers], ...],
// "rms": [...], "mel_filter_bank": Meyda's filter bank (40 rows of 257 weights; null without frames)}.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(path.join(root, "package.json"));
const Meyda = require("meyda");
const meydaVersion = require("meyda/package.json").version;

const FRAME_LENGTH = 512;
const HOP_LENGTH = 160;

const file = process.argv[2];
if (!file) {
  console.error("usage: node tools/meyda/extract.mjs SIGNAL.f32");
  process.exit(2);
}
const bytes = readFileSync(file);
if (bytes.length % 4 !== 0) {
  console.error(`${file}: ${bytes.length} bytes is not a whole number of float32 samples`);
  process.exit(2);
}
// Read little-endian explicitly: a Buffer may be unaligned for a Float32Array view.
const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const signal = new Float32Array(bytes.length / 4);
for (let i = 0; i < signal.length; i++) signal[i] = view.getFloat32(4 * i, true);

// Global settings BEFORE the first extract (DESIGN §3): the mel filter bank is built lazily from them.
Meyda.bufferSize = FRAME_LENGTH;
Meyda.sampleRate = 16000;
Meyda.melBands = 40;
Meyda.windowingFunction = "hamming";

const nFrames =
  signal.length < FRAME_LENGTH ? 0 : 1 + Math.floor((signal.length - FRAME_LENGTH) / HOP_LENGTH);
const melBands = [];
const rms = [];
for (let i = 0; i < nFrames; i++) {
  const frame = signal.slice(i * HOP_LENGTH, i * HOP_LENGTH + FRAME_LENGTH);
  const features = Meyda.extract(["melBands", "rms"], frame);
  melBands.push(features.melBands);
  rms.push(features.rms);
}
process.stdout.write(
  JSON.stringify({
    meyda_version: meydaVersion,
    n_frames: nFrames,
    mel_bands: melBands,
    rms,
    mel_filter_bank: nFrames > 0 ? Meyda.melFilterBank : null,
  }),
);
