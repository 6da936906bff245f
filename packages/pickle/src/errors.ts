/**
 * One error type for everything this package refuses or cannot read, so callers can tell a bad
 * file (PickleError) from a bug. `offset` is the byte of the opcode at fault, when known.
 */
export class PickleError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in @userpref/core). */
  readonly expected = true;
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super(message);
    this.name = 'PickleError';
  }
}
