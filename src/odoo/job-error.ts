/** A job function failed in a way Odoo should be told about (the message is shown to a person). */
export class JobError extends Error {
  readonly code = 'JOB_ERROR';
}
