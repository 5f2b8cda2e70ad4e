/**
 * Errors of the pushdial API: one base class, `PushdialError`, carrying the answer's RFC
 * 9457 problem document and its `Retry-After`, and one subclass per status a caller may
 * want to catch on its own (`NotFoundError`, `RateLimitError`, …), so that
 * `catch (e) { if (e instanceof ConflictError) … }` reads as the API's own contract.
 */
import type { components } from './schema.js';

/** One invalid field of a `validation_failed` problem. */
export type ProblemField = components['schemas']['ProblemField'];
/** The RFC 9457 problem document every pushdial error answers with. */
export type Problem = components['schemas']['Problem'];

/** What a PushdialError is built from: a problem document, or the parts of one that are known. */
export type ProblemInit = { status: number } & { [K in keyof Problem]?: Problem[K] | null };

export interface PushdialErrorOptions {
  /** The answer's body as received (a problem document, text, or nothing). */
  body?: unknown;
  /** The answer's `Retry-After`, in seconds. */
  retryAfter?: number | undefined;
  /** What went wrong underneath (a network failure). */
  cause?: unknown;
}

/**
 * An error answer of the pushdial API, or a failure to get one.
 *
 * - `status`: the HTTP status (0 when no answer came: a network failure);
 * - `code`: the problem's stable machine-readable code (`no_device_reachable`,
 *   `rate_limited`, …; `http_error` for an answer that was not a problem document, a
 *   proxy's HTML 502 say, and `network_error` when no answer came);
 * - `problem`: the whole problem document (`type`, `title`, `status`, `detail`, `code`,
 *   `request_id`, `errors`), always complete;
 * - `retryAfter`: the answer's `Retry-After` in seconds (429, 503), else undefined;
 * - `detail` (a sentence to show), `requestId` (quote it to support), `errors` (per-field).
 *
 * Subclasses by status: BadRequestError 400, AuthenticationError 401,
 * PermissionDeniedError 403, NotFoundError 404, ConflictError 409, PayloadTooLargeError
 * 413, UnprocessableEntityError 422, RateLimitError 429, InternalServerError 5xx,
 * ServiceUnavailableError 503, ConnectionError (no answer).
 */
export class PushdialError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly type: string;
  readonly requestId: string | undefined;
  readonly errors: ProblemField[];
  /** The problem document: as answered, or made from the status when the answer had none. */
  readonly problem: Problem;
  /** The answer's `Retry-After`, in seconds, when it had one. */
  readonly retryAfter: number | undefined;
  /** The parsed answer body, as received. */
  readonly body: unknown;

  constructor(problem: ProblemInit, options: PushdialErrorOptions = {}) {
    const detail = problem.detail || problem.title || `request failed with status ${problem.status}`;
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.status = problem.status;
    this.code = problem.code || (problem.status === 0 ? 'network_error' : 'http_error');
    this.title = problem.title || '';
    this.detail = detail;
    this.type = problem.type || 'about:blank';
    this.requestId = problem.request_id || undefined;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.problem = {
      type: this.type,
      title: this.title,
      status: this.status,
      detail: this.detail,
      code: this.code,
      request_id: this.requestId ?? '',
      errors: this.errors,
    } as Problem;
    this.retryAfter = options.retryAfter;
    this.body = options.body ?? problem;
  }

  /**
   * The error of a failed answer, of the subclass its status calls for, from its status,
   * headers (`Retry-After`, `Request-Id`) and parsed body.
   */
  static fromResponse(response: Response, body: unknown): PushdialError {
    const requestId = response.headers.get('request-id') ?? undefined;
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
    const Class = errorClassFor(response.status);
    if (isProblem(body)) {
      return new Class(
        { ...body, status: body.status || response.status, request_id: body.request_id || requestId },
        { body, retryAfter },
      );
    }
    return new Class(
      {
        status: response.status,
        title: response.statusText,
        detail: `${response.status} ${response.statusText || 'error'}`.trim(),
        request_id: requestId,
      },
      { body, retryAfter },
    );
  }

  /** The message of one field's validation error, if the server named that field. */
  fieldError(field: string): string | undefined {
    return this.errors.find((e) => e.field === field)?.message;
  }
}

/** 400: the request was malformed (a body that is not JSON, an id of the wrong kind). */
export class BadRequestError extends PushdialError {}
/** 401: no key, or a key that is wrong, revoked or expired. */
export class AuthenticationError extends PushdialError {}
/** 403: the key (or member) may not do this. */
export class PermissionDeniedError extends PushdialError {}
/** 404: nothing of that id in this organization. */
export class NotFoundError extends PushdialError {}
/** 409: the state forbids it now (`no_device_reachable`, `call_not_cancelable`, …). */
export class ConflictError extends PushdialError {}
/** 413: the body is too large. */
export class PayloadTooLargeError extends PushdialError {}
/** 422: a field is invalid (`validation_failed` with `errors`, `number_invalid`, …). */
export class UnprocessableEntityError extends PushdialError {}
/** 429: a rate limit or quota refused it; `retryAfter` says when to try again. */
export class RateLimitError extends PushdialError {}
/** 5xx: something failed on the server's side. */
export class InternalServerError extends PushdialError {}
/** 503: a dependency is unavailable or the server is overloaded; `retryAfter` says when to retry. */
export class ServiceUnavailableError extends InternalServerError {}
/** No answer came: the network failed, or the server could not be reached (`status` 0). */
export class ConnectionError extends PushdialError {
  constructor(cause: unknown) {
    super(
      {
        status: 0,
        code: 'network_error',
        title: 'Network error',
        detail: cause instanceof Error ? `could not reach the server: ${cause.message}` : 'could not reach the server',
      },
      { cause, body: null },
    );
  }
}

/** The former name of PushdialError, kept for code written against it. */
export { PushdialError as ProblemError };

function errorClassFor(status: number): typeof PushdialError {
  switch (status) {
    case 400:
      return BadRequestError;
    case 401:
      return AuthenticationError;
    case 403:
      return PermissionDeniedError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 413:
      return PayloadTooLargeError;
    case 422:
      return UnprocessableEntityError;
    case 429:
      return RateLimitError;
    case 503:
      return ServiceUnavailableError;
    default:
      return status >= 500 ? InternalServerError : PushdialError;
  }
}

/**
 * A `Retry-After` value in seconds: delta-seconds (what pushdial sends; a fraction, which
 * some proxies send, is taken as such) or an HTTP date (it starts with the day's name);
 * undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  // Only an HTTP date goes to Date.parse, which reads almost anything ("1.5" is a day in
  // 2001: no wait at all).
  if (!/^(mon|tue|wed|thu|fri|sat|sun)[a-z]*[, ]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** Whether a value has the shape of a pushdial problem document. */
export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { status?: unknown }).status === 'number' &&
    (typeof (value as { code?: unknown }).code === 'string' || typeof (value as { detail?: unknown }).detail === 'string')
  );
}
