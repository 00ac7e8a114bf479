import { AmiActionError } from './errors.js';
import type { AmiActionFields } from './types.js';

const KEY_RE = /^[A-Za-z0-9_-]+$/;
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
 * The header lines an action is written as, in order: the first `Action` key first, then every
 * other key in insertion order with each of its values (an array sends the key once per value).
 * ActionID is left out (buildAction writes its own). This is the one place that decides what
 * goes on the wire: buildAction writes exactly these lines, and the action policy judges them.
 * Throws AmiActionError('invalid') when a key is not [A-Za-z0-9_-]+, a value is not a string or a
 * number, or a key/value contains CR, LF or NUL.
 */
export function actionHeaders(fields: AmiActionFields): Array<[string, string]> {
  if (fields === null || typeof fields !== 'object') {
    throw new AmiActionError('invalid', 'AMI action rejected: fields must be an object like {Action: "Ping"}');
  }
  const name = actionName(fields);
  if (name === undefined || name === '') {
    throw new AmiActionError('invalid', 'AMI action rejected: no "Action" field (e.g. {Action: "Ping"})');
  }
  const lines: Array<[string, string]> = [];
  let actionLine: [string, string] | null = null;
  for (const key of Object.keys(fields)) {
    if (!KEY_RE.test(key)) {
      throw new AmiActionError('invalid', `AMI action "${name}" rejected before sending: header name ${show(key)} must match [A-Za-z0-9_-]+`);
    }
    const raw = fields[key];
    const values: ReadonlyArray<string | number> = Array.isArray(raw) ? raw : [raw as string | number];
    for (const v of values) {
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new AmiActionError(
          'invalid',
          `AMI action "${name}" rejected before sending: header ${key} has a ${typeof v} value; only strings and numbers are allowed`,
        );
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
        if (!actionLine) actionLine = [key, s];
        continue;
      }
      lines.push([key, s]);
    }
  }
  return [actionLine!, ...lines];
}

/** Serialise an action: actionHeaders(fields) with `ActionID: actionId` after the Action line. */
export function buildAction(fields: AmiActionFields, actionId: string): string {
  const [action, ...rest] = actionHeaders(fields);
  if (BAD_VALUE_RE.test(actionId) || !actionId) throw new AmiActionError('invalid', 'internal: bad ActionID');
  return `${action![0]}: ${action![1]}\r\nActionID: ${actionId}\r\n${rest.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}
