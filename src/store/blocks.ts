/**
 * The fraud stage's account blocks (table account_blocks, migration 3): few rows, written at
 * once (a block must survive a crash right after it was decided; the AstDB key alone could be
 * lost with an Asterisk reinstall, and the daemon reasserts it from here at each AMI login).
 */
import type { Database } from 'better-sqlite3';
import type { AccountBlock, BlockStorePort } from '../fraud/types.js';

interface Row {
  account: string;
  mode: string;
  created_at: number;
  policy: string;
  reason: string;
  address: string | null;
}

export class AccountBlocks implements BlockStorePort {
  private readonly stmts;

  constructor(db: Database) {
    this.stmts = {
      upsert: db.prepare(`INSERT INTO account_blocks (account, mode, created_at, policy, reason, address) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(account) DO UPDATE SET mode=excluded.mode, created_at=excluded.created_at, policy=excluded.policy, reason=excluded.reason, address=excluded.address`),
      del: db.prepare(`DELETE FROM account_blocks WHERE account = ?`),
      all: db.prepare(`SELECT * FROM account_blocks ORDER BY created_at`),
    };
  }

  saveBlock(b: AccountBlock): void {
    this.stmts.upsert.run(b.account, b.mode, b.createdAt, b.policy, b.reason, b.address);
  }

  deleteBlock(account: string): boolean {
    return this.stmts.del.run(account).changes > 0;
  }

  activeBlocks(): AccountBlock[] {
    return (this.stmts.all.all() as Row[]).map((r) => ({
      account: r.account,
      mode: r.mode === 'internal' ? 'internal' : 'all',
      createdAt: r.created_at,
      policy: r.policy,
      reason: r.reason,
      address: r.address,
    }));
  }
}
