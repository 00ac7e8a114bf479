/**
 * A native module (better-sqlite3, the nftables addon) compiled for another Node.js ABI than the
 * one running: Node refuses it at dlopen with ERR_DLOPEN_FAILED and a text naming both
 * NODE_MODULE_VERSIONs. This turns that into what an operator needs: which module, built for which
 * Node, running on which, and what to do. The package is built for one Node major (the postinst
 * warns when another is installed); `npm ci` builds for the Node that runs it.
 */
import { StartupError } from './errors.js';

/** NODE_MODULE_VERSION → Node.js major (nodejs/node doc/abi_version_registry.json) */
const NODE_MAJOR_OF_ABI: Readonly<Record<number, number>> = { 93: 16, 108: 18, 115: 20, 120: 21, 127: 22, 131: 23, 137: 24, 141: 25 };

export interface AbiMismatch {
  /** the .node file Node refused */
  file: string;
  /** the NODE_MODULE_VERSION it was compiled for */
  built: number;
  /** process.versions.modules */
  running: number;
}

/** The mismatch an error of require()/dlopen describes, or null for any other error. */
export function abiMismatch(err: unknown): AbiMismatch | null {
  const msg = err instanceof Error ? err.message : '';
  const m =
    /The module '([^']+)'\s+was compiled against a different Node\.js version using\s+NODE_MODULE_VERSION (\d+)\.\s+This version of Node\.js requires\s+NODE_MODULE_VERSION (\d+)/.exec(
      msg,
    );
  if (!m) return null;
  return { file: m[1]!, built: Number(m[2]), running: Number(m[3]) };
}

const nodeOf = (abi: number): string => (NODE_MAJOR_OF_ABI[abi] ? `Node.js ${NODE_MAJOR_OF_ABI[abi]}` : 'another Node.js');

/** One sentence: `what` (e.g. "better-sqlite3") was built for Node X (ABI n), this is Node Y (ABI m). */
export function describeAbiMismatch(what: string, m: AbiMismatch): string {
  return `${what} (${m.file}) was built for ${nodeOf(m.built)} (module ABI ${m.built}) but this is Node.js ${process.versions.node} (module ABI ${m.running})`;
}

/** The start-stopping error for better-sqlite3 built for another Node.js, or null for any other error. */
export function sqliteAbiError(err: unknown): StartupError | null {
  const m = abiMismatch(err);
  if (!m) return null;
  return new StartupError(
    `${describeAbiMismatch('better-sqlite3', m)}: the state database cannot be opened. Install the Node.js it was built for, or build it for this one: npm rebuild better-sqlite3 in a source install (build-essential, python3), or build the Debian package with this Node.js (npm ci && npm run package)`,
    'NATIVE_MODULE_ABI',
  );
}
