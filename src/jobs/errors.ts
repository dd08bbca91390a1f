import { messageOf } from '../support/errors.js';
/**
 * How a job's failure should be treated. Both engines read these the same way: a
 * NonRetryableError fails the job at once; a RateLimitError retries after a longer delay;
 * anything else is retryable with the job's normal backoff.
 */
export class NonRetryableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

export class RateLimitError extends Error {
  /** A hint from the remote side (Retry-After); otherwise the job's delay times RATE_LIMIT_FACTOR. */
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, options?: ErrorOptions & { retryAfterSeconds?: number }) {
    super(message, options);
    this.name = 'RateLimitError';
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

export type FailureKind = 'retryable' | 'non-retryable' | 'rate-limited';

/** A failure as it crosses a process boundary (child stdout, pg-boss output). */
export interface JobFailure {
  message: string;
  kind: FailureKind;
  retryAfterSeconds?: number;
}

export function classifyFailure(error: unknown): JobFailure {
  const message = messageOf(error);
  if (error instanceof NonRetryableError || (error instanceof Error && error.name === 'NonRetryableError')) {
    return { message, kind: 'non-retryable' };
  }
  if (error instanceof RateLimitError || (error instanceof Error && error.name === 'RateLimitError')) {
    const retryAfterSeconds = (error as RateLimitError).retryAfterSeconds;
    return retryAfterSeconds === undefined ? { message, kind: 'rate-limited' } : { message, kind: 'rate-limited', retryAfterSeconds };
  }
  return { message, kind: 'retryable' };
}
