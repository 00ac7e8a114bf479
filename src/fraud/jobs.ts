/** The fraud stage's Odoo jobs (the bridge registers them next to security.ban / security.unban). */
import { AppError } from '../common/errors.js';
import type { FraudEngine } from './engine.js';

const ACCOUNT_RE = /^[A-Za-z0-9_.-]{1,80}$/;

function accountsOf(args: unknown): string[] {
  const list = (Array.isArray(args) ? (args as unknown[]).flat(2) : [args]).flatMap((x) =>
    typeof x === 'string'
      ? [x]
      : x && typeof x === 'object' && typeof (x as { account?: unknown }).account === 'string'
        ? [(x as { account: string }).account]
        : [],
  );
  if (list.length === 0) throw new AppError('no account given (args: "102" or ["102", "103"] or {account: "102"})', 'INVALID_TARGET', 400);
  if (list.length > 1000) throw new AppError('too many accounts in one job (max 1000)', 'INVALID_TARGET', 400);
  return list;
}

/** security.unblock_account: args = an account, a list, or {account}; security.get_blocked_accounts. */
export function fraudJobFunctions(engine: FraudEngine): Map<string, (args: unknown, kwargs: Record<string, unknown>) => Promise<unknown>> {
  return new Map<string, (args: unknown, kwargs: Record<string, unknown>) => Promise<unknown>>([
    [
      'security.unblock_account',
      async (args) =>
        accountsOf(args).map((account) =>
          ACCOUNT_RE.test(account)
            ? { account, unblocked: engine.unblock(account, 'odoo') }
            : { account: account.slice(0, 80), unblocked: false, error: 'not an account name' },
        ),
    ],
    ['security.get_blocked_accounts', async () => engine.snapshot().blocked],
  ]);
}
