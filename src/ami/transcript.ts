import { AmiFramer, type AmiFramerOptions } from './framer.js';
import { AmiFrame } from './message.js';
import type { AmiFrameDrop } from './types.js';

export interface TranscriptFrame {
  /** the frame text (no terminating blank line) */
  raw: string;
  /** the lazily parsed message */
  message: AmiFrame;
}

/**
 * Split a whole recorded AMI byte stream into frames, with the same framer (and bounds) the
 * client uses. A leading `Asterisk Call Manager/...` greeting line is skipped. A trailing partial
 * frame (no terminator) is ignored. Dropped frames are reported through `onDrop`.
 */
export function splitTranscript(
  bytes: Buffer | string,
  opts: Omit<AmiFramerOptions, 'expectGreeting'> & { onDrop?: (d: AmiFrameDrop) => void } = {},
): TranscriptFrame[] {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const out: TranscriptFrame[] = [];
  const framer = new AmiFramer(
    { frame: (raw) => out.push({ raw, message: new AmiFrame(raw) }), drop: opts.onDrop },
    { ...opts, expectGreeting: buf.subarray(0, 22).toString('latin1') === 'Asterisk Call Manager/' },
  );
  framer.push(buf);
  return out;
}
