/**
 * A bounded load run of the ranking service on loopback: the `small` (by default) random IDEFICS2 served
 * in-process on 127.0.0.1 (any free port), `clients` concurrent clients send `requests` JSON
 * requests (4 reference pairs, 8 candidates, base64 PNGs), then the server is closed. The queue
 * holds every client, so a healthy run has zero errors. Prints p50 / p99 latency and throughput.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { Idefics2Backbone, writeIdefics2Checkpoint, type PresetName } from '@userpref/backbone-idefics2';
import { initRuntime, runtimeInfo } from '@userpref/runtime';
import { createRankServer, runLoad, type LoadResult } from '@userpref/ranking-server';

async function png(seed: number): Promise<string> {
  const w = 96;
  const h = 88;
  const raw = Buffer.alloc(w * h * 3);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < raw.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    raw[i] = s >>> 24;
  }
  return (await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer()).toString('base64');
}

export interface LoadBenchResult extends LoadResult {
  preset: PresetName;
  clients: number;
  referencePairs: number;
  candidates: number;
  backend: string;
}

export async function benchServeLoad(o: { preset?: PresetName; clients?: number; requests?: number; referencePairs?: number; candidates?: number } = {}): Promise<LoadBenchResult> {
  const preset = o.preset ?? 'small';
  const clients = o.clients ?? 4;
  const requests = o.requests ?? 24;
  const pairs = o.referencePairs ?? 4;
  const n = o.candidates ?? 8;
  await initRuntime({ device: 'cpu' });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-serve-'));
  try {
    await writeIdefics2Checkpoint({ preset, outDir: dir, seed: 0 });
    const backbone = new Idefics2Backbone({ path: dir, usePrompt: true, maxPromptLen: 100 }, { seed: 0, baseDir: dir });
    await backbone.init();
    const backend = runtimeInfo()?.backend ?? 'unknown';
    const server = await createRankServer({ backbone, model: { backbone: 'idefics2', base: dir, adapter: null, tokens: null, backend, device: 'cpu', imageSize: 512 }, limits: { queue: clients, timeoutMs: 600_000 } });
    const url = await server.listen(0, '127.0.0.1');
    try {
      const body = JSON.stringify({
        liked: await Promise.all(Array.from({ length: pairs }, (_, i) => png(100 + i))),
        disliked: await Promise.all(Array.from({ length: pairs }, (_, i) => png(200 + i))),
        candidates: await Promise.all(Array.from({ length: n }, (_, i) => png(300 + i))),
        prompt: 'a portrait of a cat in the style of van gogh',
      });
      // One request first: vision-tower outputs cached, kernels warm.
      await runLoad({ url: `${url}/v1/rank`, body, contentType: 'application/json', clients: 1, requests: 1 });
      const r = await runLoad({ url: `${url}/v1/rank`, body, contentType: 'application/json', clients, requests });
      return { ...r, preset, clients, referencePairs: pairs, candidates: n, backend };
    } finally {
      await server.close();
      backbone.dispose();
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchServeLoad().then((r) => console.log(JSON.stringify(r, null, 2)), (e) => {
    console.error(e);
    process.exit(1);
  });
}
