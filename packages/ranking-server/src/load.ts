/**
 * A bounded load run against a ranking service: `clients` concurrent clients send `requests`
 * requests in all (each the same body), then it stops. Reports latency percentiles, throughput
 * and every non-200 answer. Meant for loopback (the bench starts its own server).
 */
export interface LoadOptions {
  readonly url: string;
  readonly body: string;
  readonly contentType: string;
  readonly clients: number;
  readonly requests: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  /** Status code (or 'network') -> count, for the answers that were not 200. */
  readonly failures: Record<string, number>;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  if (!(o.clients >= 1 && o.requests >= 1)) throw new Error('runLoad needs at least one client and one request');
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let next = 0;
  const started = performance.now();
  const client = async () => {
    while (next < o.requests) {
      next++;
      const t0 = performance.now();
      try {
        const res = await fetch(o.url, { method: 'POST', body: o.body, headers: { 'content-type': o.contentType } });
        await res.arrayBuffer();
        if (res.status !== 200) failures[res.status] = (failures[res.status] ?? 0) + 1;
        else latencies.push(performance.now() - t0);
      } catch {
        failures.network = (failures.network ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: o.clients }, client));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const errors = Object.values(failures).reduce((s, n) => s + n, 0);
  return { requests: o.requests, errors, failures, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: latencies[latencies.length - 1] ?? NaN, seconds, requestsPerSecond: latencies.length / seconds };
}
