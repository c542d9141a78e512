// Large uncompressed recordings made small in the browser: a WAV over the size the page sends
// as is is decoded by an AudioContext, mixed down to mono, resampled to 16 kHz (what Whisper
// listens at, and small enough for the edge's body limit) and encoded as 16-bit PCM WAV.

/** The rate transcription works at; recordings are resampled to it. */
export const SPEECH_RATE = 16_000;

/** A WAV file, ready to upload. */
export interface Wav {
  data: Uint8Array;
  seconds: number;
}

/** Decodes any audio the browser can play and re-encodes it as 16 kHz mono 16-bit WAV. */
export async function toWav(encoded: ArrayBuffer): Promise<Wav> {
  const context = new AudioContext();
  let decoded: AudioBuffer;
  try {
    decoded = await context.decodeAudioData(encoded.slice(0));
  } catch {
    throw new Error("This browser cannot decode that audio, so it cannot be converted to WAV.");
  } finally {
    void context.close();
  }
  const frames = Math.max(1, Math.ceil(decoded.duration * SPEECH_RATE));
  const offline = new OfflineAudioContext(1, frames, SPEECH_RATE);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const mono = await offline.startRendering();
  return { data: encodeWav(mono.getChannelData(0), SPEECH_RATE), seconds: decoded.duration };
}

/** Mono float samples (-1..1) as a 16-bit PCM WAV file. */
export function encodeWav(samples: Float32Array, rate: number): Uint8Array {
  const bytes = new Uint8Array(44 + samples.length * 2);
  const view = new DataView(bytes.buffer);
  const text = (at: number, s: string) => {
    for (let i = 0; i < s.length; i++) bytes[at + i] = s.charCodeAt(i);
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return bytes;
}

