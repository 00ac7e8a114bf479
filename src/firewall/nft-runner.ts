import { AppError } from '../common/errors.js';

/** Runs one nft script (one transaction) and returns nft's JSON output ("" when none). */
export interface NftRunner {
  run(script: string): Promise<string>;
  /** `nft -j -t list ruleset inet`: tables, sets, chains and rules without set elements. nft
   *  1.0.6 leaves the elements out of this listing even in the kernel dump (~2 ms at 100k
   *  elements, measured), where `-t list table` still fetches them all (~0.6 s). */
  listTerse(): Promise<string>;
  readonly kind: 'addon' | 'command';
  close?(): Promise<void>;
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
