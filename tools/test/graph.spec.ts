/**
 * The architecture rule, checked on Nx's own project graph: apps -> plugins -> core, and core (and
 * every library under packages/) never depends on a plugin or an app.
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');

interface Graph {
  graph: { nodes: Record<string, { data: { root: string } }>; dependencies: Record<string, Array<{ target: string }>> };
}

it('has apps -> plugins -> core and never core -> plugin', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'graph-'));
  const file = path.join(dir, 'graph.json');
  execFileSync(path.join(root, 'node_modules', '.bin', 'nx'), ['graph', `--file=${file}`], { cwd: root, env: { ...process.env, NX_DAEMON: 'false' }, stdio: 'pipe' });
  const g = (JSON.parse(readFileSync(file, 'utf8')) as Graph).graph;
  rmSync(dir, { recursive: true, force: true });
  const kind = (name: string) => g.nodes[name]?.data.root.split('/')[0];
  const deps = (name: string) => (g.dependencies[name] ?? []).map((d) => d.target).filter((t) => g.nodes[t]);
  const names = Object.keys(g.nodes);
  expect(names).toEqual(expect.arrayContaining(['@userpref/core', '@userpref/backbone-idefics2', '@userpref/loss-preference', '@userpref/preference-tokens', '@userpref/dataset-pickapic', 'train', 'train2', 'eval']));
  for (const n of names.filter((x) => kind(x) === 'packages')) {
    for (const d of deps(n)) expect(`${n} -> ${d}: ${kind(d)}`).toBe(`${n} -> ${d}: packages`);
  }
  expect(deps('@userpref/core')).toEqual([]);
  for (const n of names.filter((x) => kind(x) === 'plugins')) {
    expect(deps(n)).toContain('@userpref/core');
    for (const d of deps(n)) expect(kind(d)).not.toBe('apps');
  }
  for (const app of ['train', 'train2', 'eval']) {
    expect(deps(app).filter((d) => kind(d) === 'plugins').length).toBeGreaterThan(0);
  }
}, 120000);
