/**
 * Reading the answer of a peer we POST to or GET from (webhook receivers, `odoo init`) without
 * trusting its size: a body longer than `max` is cancelled, never buffered.
 */
export interface LimitedBody {
  /** the first bytes, at most `max` */
  bytes: Buffer;
  /** the body was longer than `max` (or declared so): the rest was not read */
  truncated: boolean;
}

export async function readLimited(res: Response, max: number): Promise<LimitedBody> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max || !res.body) {
    await res.body?.cancel().catch(() => undefined);
    return { bytes: Buffer.alloc(0), truncated: declared > max };
  }
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { bytes: Buffer.concat(parts), truncated: false };
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return { bytes: Buffer.concat(parts), truncated: true };
    }
    parts.push(value);
  }
}
