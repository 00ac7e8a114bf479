/**
 * What counts as a secret in the config, and how a value that may carry one is shown in an error
 * or a log line: never the secret itself.
 */

/** ami.secret, odoo.password, odoo.apiKey, odoo.agentToken, rest.tokens[].token, webhooks[].secret, ... */
const SECRET_KEY_RE = /(secret|token|password|passwd|key)s?$/i;

/** A config key (dotted path, list indexes allowed) whose value is a secret. */
export function isSecretKey(path: string): boolean {
  return SECRET_KEY_RE.test(path.replace(/\[\d+\]$/, ''));
}

/** A URL for an error or a log line: user, password and query string left out (they may carry a token). */
export function redactUrl(url: string): string {
  return url
    .replace(/^([^:/?#]*:\/\/)[^/?#@]*@/, '$1…@')
    .replace(/\?[^#]*/, '?…')
    .slice(0, 200);
}
