/**
 * Per-kernel profile of one stage-1 training step on `small` (development aid for the speed work).
 * Run: node tools/scripts/run-ts.js plugins/backbone-idefics2/bench/profile.ts [batch]
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { writeIdefics2Checkpoint } from '../src/checkpoint';
import { Idefics2Backbone } from '../src/backbone';
import { benchExample } from './examples';

(async () => {
  await initRuntime({ device: 'cpu' });
  const B = Number(process.argv[2] ?? 1);
  const opts = JSON.parse(process.argv[3] ?? '{}');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'prof-'));
  await writeIdefics2Checkpoint({ preset: 'small', outDir: dir, seed: 0 });
  const bb = new Idefics2Backbone({ path: dir, ...opts }, { seed: 1, baseDir: '/' });
  await bb.init();
  const batch = Array.from({ length: B }, (_, i) => benchExample(i, 8));
  const prepared = await bb.prepare(batch);
  console.log('seqLen', (prepared as any).seqLen);
  const vars = bb.adapterVariables();
  const step = () => {
    const { value, grads } = tf.variableGrads(() => {
      const o = bb.pairLogits(prepared, { training: true, seed: 3 });
      const l = tf.add(tf.mean(o.liked), tf.mean(o.disliked)) as tf.Scalar;
      return l;
    }, vars);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const measure = (name: string, fn: () => void, n = 3) => {
    fn();
    let bestWall = 1e12, bestCpu = 1e12;
    for (let i = 0; i < n; i++) {
      const w = Date.now(), c = cpu();
      fn();
      bestWall = Math.min(bestWall, Date.now() - w);
      bestCpu = Math.min(bestCpu, cpu() - c);
    }
    console.log(name, 'wall', bestWall, 'cpu', bestCpu.toFixed(0), 'ms (per example cpu', (bestCpu / B).toFixed(0), ')');
  };
  measure('train step', step);
  measure('eval', () => {
    const o = bb.pairLogits(prepared, { training: false });
    o.liked.dataSync();
    tf.dispose([o.liked, o.disliked]);
  });
  if (process.env.PROFILE) {
    const info = await tf.profile(() => (process.env.PROFILE === 'eval' ? (() => { const o = bb.pairLogits(prepared, { training: false }); tf.dispose([o.liked, o.disliked]); })() : step()));
    const agg = new Map<string, { ms: number; n: number; bytes: number }>();
    for (const k of info.kernels) {
      const key = k.name + ' ' + (['BatchMatMul', 'Identity', 'Slice', 'Multiply', 'Add', 'SplitV', 'GatherV2'].includes(k.name) ? JSON.stringify(k.inputShapes) : '');
      const a = agg.get(key) ?? { ms: 0, n: 0, bytes: 0 };
      a.ms += (k.kernelTimeMs as number) || 0;
      a.n++;
      a.bytes += k.totalBytesSnapshot ? 0 : 0;
      agg.set(key, a);
    }
    const rows = [...agg.entries()].sort((a, b) => b[1].ms - a[1].ms);
    for (const [k, a] of rows.slice(0, 45)) console.log(k.padEnd(28), a.ms.toFixed(1).padStart(8), a.n);
    const byName = new Map<string, number>();
    for (const k of info.kernels) if (k.name !== 'unnamed scope') byName.set(k.name, (byName.get(k.name) ?? 0) + ((k.kernelTimeMs as number) || 0));
    let total = 0;
    for (const v of byName.values()) total += v;
    console.log('kernel total ms', total.toFixed(0), [...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([n, v]) => `${n} ${v.toFixed(0)}`).join(', '));
    console.log('peakBytes', info.peakBytes / 2 ** 20, 'MB');
  }
  console.log('rss MB', process.memoryUsage().rss / 2 ** 20);
  prepared.dispose();
  bb.dispose();
  await fs.rm(dir, { recursive: true, force: true });
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
