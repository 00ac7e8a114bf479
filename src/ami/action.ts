import { AmiActionError } from './errors.js';
import type { AmiActionFields } from './types.js';

const KEY_RE = /^[A-Za-z0-9_-]+$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE_RE = /[\r\n\0]/;

function show(s: string): string {
  return JSON.stringify(s.length > 60 ? s.slice(0, 60) + '…' : s);
}

/** Name of the action in `fields` (case-insensitive `Action` key), or undefined. */
export function actionName(fields: AmiActionFields): string | undefined {
  for (const k of Object.keys(fields)) {
    if (k.toLowerCase() === 'action') {
      const v = fields[k];
      return Array.isArray(v) ? String(v[0]) : String(v);
    }
  }
  return undefined;
}

/**
 * Serialise an action. Validates everything first and throws AmiActionError('invalid') without
 * producing anything when a key is not [A-Za-z0-9_-]+ or a key/value contains CR, LF or NUL.
 * Any ActionID in `fields` is replaced by `actionId`. `Action` is written first.
 */
export function buildAction(fields: AmiActionFields, actionId: string): string {
  if (fields === null || typeof fields !== 'object') {
    throw new AmiActionError('invalid', 'AMI action rejected: fields must be an object like {Action: "Ping"}');
  }
  const name = actionName(fields);
  if (name === undefined || name === '') {
    throw new AmiActionError('invalid', 'AMI action rejected: no "Action" field (e.g. {Action: "Ping"})');
  }
  const lines: string[] = [];
  let actionLine = '';
  for (const key of Object.keys(fields)) {
    if (!KEY_RE.test(key)) {
      throw new AmiActionError('invalid', `AMI action "${name}" rejected before sending: header name ${show(key)} must match [A-Za-z0-9_-]+`);
    }
    const raw = fields[key];
    const values: ReadonlyArray<string | number> = Array.isArray(raw) ? raw : [raw as string | number];
    for (const v of values) {
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new AmiActionError('invalid', `AMI action "${name}" rejected before sending: header ${key} has a ${typeof v} value; only strings and numbers are allowed`);
      }
      const s = String(v);
      if (BAD_VALUE_RE.test(s)) {
        throw new AmiActionError(
          'invalid',
          `AMI action "${name}" rejected before sending: header ${key} value ${show(s)} contains CR, LF or NUL, which would inject AMI headers; nothing was sent`,
        );
      }
      const lk = key.toLowerCase();
      if (lk === 'actionid') continue;
      if (lk === 'action') {
        if (!actionLine) actionLine = `${key}: ${s}\r\n`;
        continue;
      }
      lines.push(`${key}: ${s}\r\n`);
    }
  }
  if (BAD_VALUE_RE.test(actionId) || !actionId) throw new AmiActionError('invalid', 'internal: bad ActionID');
  return `${actionLine}ActionID: ${actionId}\r\n${lines.join('')}\r\n`;
}
