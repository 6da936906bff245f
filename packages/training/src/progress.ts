/** A terminal progress bar (cli-progress) on stderr, silent when stderr is not a TTY. */
import { SingleBar, Presets } from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(label: string, total: number, initial = 0): Progress {
  if (!process.stderr.isTTY || process.env.CI) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} | loss {loss} | acc {acc} | {rate} ex/s | ETA {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 20,
    },
    Presets.shades_classic,
  );
  bar.start(total, initial, { loss: '-', acc: '-', rate: '-' });
  return { update: (done, fields) => bar.update(done, fields ?? {}), stop: () => bar.stop() };
}
