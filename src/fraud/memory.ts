/** Blocks kept in memory: for `pbx-guardian check` (nothing persists) and tests. */
import type { AccountBlock, BlockStorePort } from './types.js';

export class MemoryBlockStore implements BlockStorePort {
  private readonly rows = new Map<string, AccountBlock>();

  saveBlock(block: AccountBlock): void {
    this.rows.set(block.account, { ...block });
  }

  deleteBlock(account: string): boolean {
    return this.rows.delete(account);
  }

  activeBlocks(): AccountBlock[] {
    return [...this.rows.values()].map((b) => ({ ...b }));
  }
}
