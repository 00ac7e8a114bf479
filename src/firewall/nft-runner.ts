import { AppError } from '../common/errors.js';

/** Runs one nft script (one transaction) and returns nft's JSON output ("" when none). */
export interface NftRunner {
  run(script: string): Promise<string>;
  /** `nft -j -t list ruleset inet`: tables, sets, chains and rules without set elements. nft
   *  1.0.6 leaves the elements out of this listing even in the kernel dump (~2 ms at 100k
   *  elements, measured), where `-t list table` still fetches them all (~0.6 s). */
  listTerse(): Promise<string>;
  readonly kind: 'addon' | 'command';
  /** the address sets' elements over raw netlink (the addon, when built with it) */
  readonly elements?: NativeElements | null;
  close?(): Promise<void>;
}

/** One change of a set in a netlink batch. */
export interface ElemOp {
  del: boolean;
  set: string;
  keyLen: 4 | 16;
  keys: Buffer;
  /** per key, or one for all; 0 = no timeout */
  timeoutsMs?: Float64Array;
}

/** What the addon exports for it (absent in an addon built before it). */
export interface NativeElements {
  /** all ops in ONE nfnetlink batch: committed whole or refused whole (Error with errno) */
  applyElements(table: string, ops: ElemOp[]): Promise<void>;
  /** the set's elements: 32-byte records (key 16, timeout ms f64 LE, remaining ms f64 LE) */
  listElements(table: string, set: string, keyLen: 4 | 16, maxElems: number): Promise<Buffer>;
}

/** An nft failure, with a message that says what is wrong and what to do: NFT_NOT_PERMITTED
 *  (no CAP_NET_ADMIN) or NFT_FAILED. */
export class NftError extends AppError {
  constructor(
    message: string,
    readonly detail: string,
    readonly permission: boolean,
  ) {
    super(message, permission ? 'NFT_NOT_PERMITTED' : 'NFT_FAILED', 500);
    this.name = 'NftError';
  }
}

/** Builds an NftError from nft's error text. */
export function nftError(kind: 'addon' | 'command', detail: string, rc: number | string): NftError {
  const text = detail.trim().split('\n').slice(0, 6).join(' | ').slice(0, 600);
  const permission = /Operation not permitted|Permission denied/i.test(detail);
  if (permission) {
    return new NftError(
      `nft (${kind}): Operation not permitted — pbx-guardian needs CAP_NET_ADMIN; run it as root or via the systemd unit (${text})`,
      detail,
      true,
    );
  }
  if (/Protocol not supported|No such file or directory.*nf_tables|nf_tables.*not/i.test(detail) && /cache|netlink/i.test(detail)) {
    return new NftError(`nft (${kind}): the kernel has no nf_tables support (modprobe nf_tables) (${text})`, detail, false);
  }
  return new NftError(`nft (${kind}) failed (rc ${rc}): ${text || 'no error text'}`, detail, false);
}
