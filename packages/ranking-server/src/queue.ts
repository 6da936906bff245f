/**
 * The service's work queue: one ranking runs at a time (the model is CPU-bound and shared), at most
 * `capacity` more wait. A job that does not fit is refused at once (QueueFullError, HTTP 429); a
 * job that has not finished `timeoutMs` after it was queued is aborted (its signal fires, checked
 * between candidate chunks) and fails with JobTimeoutError (HTTP 504). `drain` resolves when every
 * accepted job has settled.
 */

export class QueueFullError extends Error {
  readonly statusCode = 429;
  constructor(capacity: number) {
    super(`the ranking queue is full (${capacity} waiting); retry later`);
    this.name = 'QueueFullError';
  }
}

export class JobTimeoutError extends Error {
  readonly statusCode = 504;
  constructor(ms: number) {
    super(`the ranking did not finish within ${ms} ms`);
    this.name = 'JobTimeoutError';
  }
}

export interface QueueStats {
  readonly running: number;
  readonly waiting: number;
  readonly capacity: number;
  readonly completed: number;
  readonly rejected: number;
  readonly timedOut: number;
}

export class RankQueue {
  private chain: Promise<void> = Promise.resolve();
  private running = 0;
  private waiting = 0;
  private completed = 0;
  private rejected = 0;
  private timedOut = 0;

  constructor(
    /** Jobs that may wait behind the running one. */
    readonly capacity: number,
    /** Time allowed from queueing to the end of a job. */
    readonly timeoutMs: number,
  ) {
    if (!(Number.isInteger(capacity) && capacity >= 0)) throw new Error(`queue capacity must be a non-negative integer, got ${capacity}`);
    if (!(timeoutMs > 0)) throw new Error(`timeout must be positive, got ${timeoutMs}`);
  }

  stats(): QueueStats {
    return { running: this.running, waiting: this.waiting, capacity: this.capacity, completed: this.completed, rejected: this.rejected, timedOut: this.timedOut };
  }

  /** Runs `job` when its turn comes; rejects at once when the queue is full. */
  run<T>(job: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.running + this.waiting > this.capacity) {
      this.rejected++;
      return Promise.reject(new QueueFullError(this.capacity));
    }
    const controller = new AbortController();
    const timeout = new JobTimeoutError(this.timeoutMs);
    const timer = setTimeout(() => controller.abort(timeout), this.timeoutMs);
    this.waiting++;
    const result = this.chain.then(async () => {
      this.waiting--;
      this.running++;
      try {
        controller.signal.throwIfAborted();
        return await job(controller.signal);
      } finally {
        this.running--;
      }
    });
    this.chain = result.then(
      () => undefined,
      () => undefined,
    );
    return result.then(
      (v) => {
        clearTimeout(timer);
        this.completed++;
        return v;
      },
      (err) => {
        clearTimeout(timer);
        if (controller.signal.aborted && controller.signal.reason === timeout) {
          this.timedOut++;
          throw timeout;
        }
        throw err;
      },
    );
  }

  /** Resolves once every job accepted so far has settled. */
  drain(): Promise<void> {
    return this.chain;
  }
}
