/**
 * The dialplan subroutine of the fraud stage's blocks (rules/extensions_guardian.conf, context
 * guardian-outbound-check; docs/fraud-dialplan.md): config sync installs it on request under this
 * fixed name, next to extensions.conf, and #includes it from there.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';

/** The installed file's name in the Asterisk config directory (and its base file). */
export const GUARDIAN_DIALPLAN = 'extensions_guardian.conf';
export const GUARDIAN_DIALPLAN_BASE = 'extensions.conf';

/** The shipped subroutine: the package's rules/extensions_guardian.conf. */
export function shippedGuardianDialplan(file = path.join(PACKAGE_ROOT, 'rules', GUARDIAN_DIALPLAN)): string {
  return readFileSync(file, 'utf8');
}
