import { AppError, JOB_ERROR } from '../common/errors.js';

/** A job function failed in a way Odoo should be told about (the message is shown to a person). */
export class JobError extends AppError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, JOB_ERROR, 403, options);
  }
}
