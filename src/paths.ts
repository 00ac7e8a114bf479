import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root folder (this file is dist/src/paths.js once built). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
