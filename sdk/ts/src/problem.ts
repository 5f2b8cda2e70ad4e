import type { components } from './schema.js';

/** One invalid field of a `validation_failed` problem. */
export type ProblemField = components['schemas']['ProblemField'];
/** The RFC 9457 problem document every pushdial error answers with. */
export type Problem = components['schemas']['Problem'];

/**
 * An error answer of the pushdial API, carrying its RFC 9457 problem document
 * (`application/problem+json`): a stable `code`, a human `detail` to show, the
 * `request_id` to quote to support, and per-field `errors` for validation.
 *
 * Answers that are not problem documents (a proxy's HTML 502, a network failure) become
 * a ProblemError too, with `code` `http_error` or `network_error`, so callers handle one type.
 */
export class ProblemError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly type: string;
  readonly requestId: string | undefined;
  readonly errors: ProblemField[];
  /** The parsed answer body, as received. */
  readonly body: unknown;

  constructor(problem: Partial<Problem> & { status: number }, body?: unknown) {
    const detail = problem.detail || problem.title || `request failed with status ${problem.status}`;
    super(detail);
    this.name = 'ProblemError';
    this.status = problem.status;
    this.code = problem.code || (problem.status === 0 ? 'network_error' : 'http_error');
    this.title = problem.title || '';
    this.detail = detail;
    this.type = problem.type || 'about:blank';
    this.requestId = problem.request_id;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.body = body ?? problem;
  }

  /** Builds the error of a failed answer from its status, headers and parsed body. */
  static fromResponse(response: Response, body: unknown): ProblemError {
    const requestId = response.headers.get('request-id') ?? undefined;
    if (isProblem(body)) {
      return new ProblemError({ ...body, status: body.status || response.status, request_id: body.request_id ?? requestId }, body);
    }
    return new ProblemError(
      {
        status: response.status,
        title: response.statusText,
        detail: `${response.status} ${response.statusText || 'error'}`.trim(),
        request_id: requestId,
      },
      body,
    );
  }

  /** The message of one field's validation error, if the server named that field. */
  fieldError(field: string): string | undefined {
    return this.errors.find((e) => e.field === field)?.message;
  }
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
