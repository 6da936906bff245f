/**
 * The ranking service over real HTTP on loopback, on the tiny IDEFICS2: multipart and JSON give
 * the library's ranking; concurrent clients each get their own answer; a full queue answers 429,
 * a late ranking 504; every bad input gets its status and names its field; closing lets the
 * request in flight finish.
 */
import { promises as fs } from 'fs';
import type { Idefics2Backbone } from '@userpref/backbone-idefics2';
import type { Backbone } from '@userpref/core';
import { pairHistory, rankCandidates, readImage, type Ranking } from '@userpref/ranking';
import { createRankServer, type RankLimits, type RankServer, type ServedModel } from '@userpref/ranking-server';
import { encodedImage, gated, noiseImage, tinyBackbone } from './fixtures';

let backbone: Idefics2Backbone;
let dir: string;
let model: ServedModel;
const servers: RankServer[] = [];

beforeAll(async () => {
  ({ backbone, dir, model } = await tinyBackbone());
}, 120000);

afterAll(async () => {
  for (const s of servers) await s.close().catch(() => undefined);
  backbone?.dispose();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function start(limits: Partial<RankLimits> = {}, served: Backbone = backbone): Promise<string> {
  const server = await createRankServer({ backbone: served, model, limits });
  servers.push(server);
  return server.listen(0, '127.0.0.1');
}

interface Images {
  liked: Buffer[];
  disliked: Buffer[];
  candidates: Buffer[];
}

async function images(seed: number, pairs: number, candidates: number): Promise<Images> {
  const make = (n: number, base: number) => Promise.all(Array.from({ length: n }, (_, i) => encodedImage(base + i, (['png', 'jpeg', 'webp'] as const)[i % 3])));
  return { liked: await make(pairs, seed * 100), disliked: await make(pairs, seed * 100 + 50), candidates: await make(candidates, seed * 100 + 80) };
}

function multipart(imgs: Images, prompt = 'a red cube'): FormData {
  const form = new FormData();
  for (const field of ['liked', 'disliked', 'candidates'] as const) imgs[field].forEach((b, i) => form.append(field, new Blob([b]), `${field}-${i}.img`));
  form.append('prompt', prompt);
  return form;
}

const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const b64 = (b: Buffer) => b.toString('base64');

async function library(imgs: Images, prompt: string): Promise<Ranking> {
  const read = (bs: Buffer[], f: string) => Promise.all(bs.map((b, i) => readImage(b, `${f}${i}`, { size: model.imageSize })));
  const history = pairHistory(await read(imgs.liked, 'l'), await read(imgs.disliked, 'd'));
  const cands = await read(imgs.candidates, 'c');
  return rankCandidates(backbone, { history, prompt, candidates: cands.map((image) => ({ name: image.name, image })) });
}

describe('ranking service over HTTP (tiny IDEFICS2)', () => {
  let url: string;
  let imgs: Images;
  beforeAll(async () => {
    url = await start();
    imgs = await images(1, 2, 4);
  });

  it('answers /healthz and /v1/model', async () => {
    const h = await fetch(`${url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ status: 'ok', queue: { running: 0, waiting: 0 } });
    const m = (await (await fetch(`${url}/v1/model`)).json()) as Record<string, unknown>;
    expect(m).toMatchObject({ backbone: 'idefics2', base: model.base, adapter: null, tokens: null, backend: model.backend, historySession: true, readout: backbone.readout });
    expect((m.limits as RankLimits).maxCandidates).toBe(64);
  });

  it('ranks multipart uploads and base64 JSON alike, as the library does', async () => {
    const want = await library(imgs, 'a red cube');
    const res = await fetch(`${url}/v1/rank`, { method: 'POST', body: multipart(imgs) });
    expect(res.status).toBe(200);
    const got = (await res.json()) as Ranking;
    expect(got.order).toEqual(want.order);
    got.candidates.forEach((c, i) => expect(c.score).toBeCloseTo(want.candidates[i].score, 5));
    expect(got.candidates.map((c) => c.name)).toEqual(['candidates-0.img', 'candidates-1.img', 'candidates-2.img', 'candidates-3.img']);

    const body = { liked: imgs.liked.map(b64), disliked: imgs.disliked.map((b) => `data:image/png;base64,${b64(b)}`), candidates: imgs.candidates.map((b, i) => ({ name: `c${i}`, data: b64(b) })), prompt: 'a red cube' };
    const viaJson = (await (await fetch(`${url}/v1/rank`, json(body))).json()) as Ranking;
    expect(viaJson.order).toEqual(want.order);
    viaJson.candidates.forEach((c, i) => expect(c.score).toBeCloseTo(want.candidates[i].score, 5));
    expect(viaJson.candidates[2].name).toBe('c2');
  });

  it('gives concurrent clients with different histories each their own ranking', async () => {
    const sets = await Promise.all([2, 3, 4, 5].map((s) => images(s, 1 + (s % 2), 3)));
    const want: Ranking[] = [];
    for (const s of sets) want.push(await library(s, 'p'));
    const got = await Promise.all(sets.map((s) => fetch(`${url}/v1/rank`, { method: 'POST', body: multipart(s, 'p') }).then(async (r) => ({ status: r.status, body: (await r.json()) as Ranking }))));
    got.forEach((g, k) => {
      expect(g.status).toBe(200);
      expect(g.body.referencePairs).toBe(want[k].referencePairs);
      g.body.candidates.forEach((c, i) => expect(c.score).toBeCloseTo(want[k].candidates[i].score, 5));
    });
    // The four histories differ, so must the answers.
    expect(new Set(got.map((g) => g.body.candidates[0].score.toFixed(6))).size).toBe(4);
  });

  it('names the field of each bad input, with the right status', async () => {
    const post = async (init: RequestInit) => {
      const r = await fetch(`${url}/v1/rank`, init);
      return { status: r.status, body: (await r.json()) as { error: string; field?: string } };
    };
    const form = (extra: (f: FormData) => void) => {
      const f = multipart(imgs);
      extra(f);
      return { method: 'POST', body: f };
    };
    const notImage = await post(form((f) => f.append('candidates', new Blob(['plain text']), 'notes.txt')));
    expect(notImage).toEqual({ status: 400, body: { error: 'candidates[4] (notes.txt): not an image (JPEG, PNG or WebP expected)', field: 'candidates[4] (notes.txt)' } });
    const gifBytes = await encodedImage(9, 'gif');
    const gif = await post(form((f) => f.append('liked', new Blob([gifBytes]), 'a.gif')));
    expect([gif.status, gif.body.field]).toEqual([400, 'liked[2] (a.gif)']);
    expect(gif.body.error).toMatch(/gif images are not read/);
    const unknown = await post(form((f) => f.append('photos', new Blob([imgs.candidates[0]]), 'x.png')));
    expect([unknown.status, unknown.body.field]).toEqual([400, 'photos']);
    const unpaired = await post(form((f) => f.append('liked', new Blob([imgs.candidates[0]]), 'x.png')));
    expect(unpaired.status).toBe(400);
    expect(unpaired.body.error).toMatch(/the history is made of pairs: 3 liked and 2 disliked/);

    const badB64 = await post(json({ candidates: [b64(imgs.candidates[0]), '!!not base64!!'] }));
    expect(badB64).toEqual({ status: 400, body: { error: 'candidates[1]: not base64 data', field: 'candidates[1]' } });
    const noCands = await post(json({ liked: [], disliked: [], candidates: [] }));
    expect(noCands).toEqual({ status: 400, body: { error: 'no candidate images to rank', field: 'candidates' } });
    const missing = await post(json({ liked: [b64(imgs.liked[0])] }));
    expect([missing.status, missing.body.field]).toEqual([400, 'candidates']);
    const wrongType = await post(json({ candidates: [42] }));
    expect([wrongType.status, wrongType.body.field]).toEqual([400, 'candidates[0]']);
    const extra = await post(json({ candidates: [b64(imgs.candidates[0])], user: 'x' }));
    expect([extra.status, extra.body.field]).toEqual([400, 'user']);
    const notJson = await post({ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"candidates": [' });
    expect(notJson.status).toBe(400);
    const other = await post({ method: 'POST', headers: { 'content-type': 'image/png' }, body: imgs.candidates[0] });
    expect(other.status).toBe(415);
  });

  it('refuses requests over the size and count limits with 413', async () => {
    const small = await start({ maxCandidates: 2, maxReferencePairs: 1, maxImageBytes: 4000, maxBodyBytes: 20000, maxPromptChars: 10 });
    const post = async (init: RequestInit) => {
      const r = await fetch(`${small}/v1/rank`, init);
      return { status: r.status, body: (await r.json()) as { error: string; field?: string } };
    };
    const few = await images(7, 1, 2);
    expect((await post({ method: 'POST', body: multipart(few, 'ok') })).status).toBe(200);
    const tooMany = await post(json({ candidates: [few.candidates[0], few.candidates[1], few.candidates[0]].map(b64) }));
    expect(tooMany).toEqual({ status: 413, body: { error: '3 candidates; at most 2', field: 'candidates' } });
    const manyPairs = await post({ method: 'POST', body: multipart({ ...few, liked: [few.liked[0], few.liked[0]], disliked: [few.disliked[0], few.disliked[0]] }, 'ok') });
    expect([manyPairs.status, manyPairs.body.field]).toEqual([413, 'liked']);
    const big = await noiseImage(3, 60, 60);
    expect(big.length).toBeGreaterThan(4000);
    const bigImage = await post(json({ candidates: [b64(big)] }));
    expect(bigImage.status).toBe(413);
    const bigUpload = await post({ method: 'POST', body: multipart({ ...few, candidates: [big] }, 'ok') });
    expect(bigUpload.status).toBe(413);
    const bigBody = await post(json({ candidates: [b64(few.candidates[0])], prompt: 'x'.repeat(30000) }));
    expect(bigBody.status).toBe(413);
    const longPrompt = await post({ method: 'POST', body: multipart(few, 'a prompt that is too long') });
    expect([longPrompt.status, longPrompt.body.field]).toEqual([413, 'prompt']);
  });

  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(cond()).toBe(true);
  };

  it('answers 429 when the queue is full and 504 past the timeout', async () => {
    const g = gated(backbone);
    const busy = await start({ queue: 1 }, g.backbone);
    const load = await images(8, 2, 3);
    const send = () => fetch(`${busy}/v1/rank`, { method: 'POST', body: multipart(load) }).then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), body: await r.json() }));
    const first = send();
    await until(() => g.started() === 1);
    const second = send(); // waits behind the first (queue 1)
    await until(() => servers[servers.length - 1].queue.stats().waiting === 1);
    const third = await send();
    expect(third).toEqual({ status: 429, retry: '1', body: { error: 'the ranking queue is full (1 waiting); retry later' } });
    g.open();
    await until(() => g.started() === 2);
    g.open();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    const health = (await (await fetch(`${busy}/healthz`)).json()) as { queue: { rejected: number; completed: number } };
    expect(health.queue).toMatchObject({ rejected: 1, completed: 2, running: 0, waiting: 0 });

    const slow = gated(backbone);
    const late = await start({ timeoutMs: 300 }, slow.backbone);
    const pending = fetch(`${late}/v1/rank`, { method: 'POST', body: multipart(load) });
    await until(() => slow.started() === 1);
    await new Promise((r) => setTimeout(r, 400));
    slow.open();
    const r = await pending;
    expect(r.status).toBe(504);
    expect(await r.json()).toEqual({ error: 'the ranking did not finish within 300 ms' });
  });

  it('lets the request in flight finish when closed, then refuses connections', async () => {
    const g = gated(backbone);
    const server = await createRankServer({ backbone: g.backbone, model });
    const base = await server.listen(0, '127.0.0.1');
    const load = await images(9, 2, 8);
    const inFlight = fetch(`${base}/v1/rank`, { method: 'POST', body: multipart(load) });
    await until(() => g.started() === 1);
    const closed = server.close();
    await new Promise((r) => setTimeout(r, 100));
    g.open();
    await closed;
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as Ranking).candidates).toHaveLength(8);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
