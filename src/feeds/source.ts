/**
 * The HTTP side of a feed: one GET, read up to a bound, no redirect followed (a redirect could
 * lead an https feed to plain http). The APIBAN key is part of the URL path, so no URL with it
 * ever reaches an error or a log line: `shownUrl` is the one that does.
 */
import { AppError } from '../common/errors.js';
import { readLimited } from '../net/http-body.js';
import { VERSION } from '../version.js';
import { FeedRefusedError } from './parse.js';

const USER_AGENT = `pbx-guardian/${VERSION}`;

/** A fetch that failed and is worth trying again later (network, HTTP status). */
export class FeedFetchError extends AppError {
  constructor(
    message: string,
    readonly status: number | null = null,
  ) {
    super(message, 'FEED_UNAVAILABLE', 502);
  }
}

export interface GetOptions {
  url: string;
  /** what errors name instead of `url` (the key left out) */
  shownUrl: string;
  timeoutMs: number;
  maxBytes: number;
  /** text that must never appear in an error (the APIBAN key) */
  secret?: string;
  fetch?: typeof fetch;
}

/** `text` with every occurrence of `secret` replaced (a library's message may quote the URL). */
export function hide(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('…') : text;
}

export async function get(o: GetOptions): Promise<{ status: number; bytes: Buffer }> {
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(o.url, {
      method: 'GET',
      redirect: 'manual',
      headers: { 'user-agent': USER_AGENT, accept: 'text/plain, application/json' },
      signal: AbortSignal.timeout(o.timeoutMs),
    });
  } catch (e) {
    const why = (e as Error).name === 'TimeoutError' ? `no answer within ${o.timeoutMs} ms` : ((e as { cause?: Error }).cause?.message ?? (e as Error).message);
    throw new FeedFetchError(`${o.shownUrl} is unreachable (${hide(why, o.secret).slice(0, 200)})`);
  }
  const body = await readLimited(res, o.maxBytes).catch((e: Error) => {
    throw new FeedFetchError(`reading the answer of ${o.shownUrl} failed (${hide(e.message, o.secret).slice(0, 200)})`, res.status);
  });
  if (body.truncated) throw new FeedRefusedError(`${o.shownUrl} answered with more than maxBytes ${o.maxBytes} bytes: refused whole`, 'too_big');
  return { status: res.status, bytes: body.bytes };
}
