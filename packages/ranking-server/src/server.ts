/**
 * The ranking service on Fastify. The backbone is loaded once by the caller and shared; requests
 * are checked (sizes, counts, every image decoded) before they queue, and ranked one at a time.
 *
 *   GET  /             the page (pick references and candidates, see them ranked)
 *   GET  /healthz      {"status": "ok", "queue": {...}}
 *   GET  /v1/model     which base, adapter, tokens and tensor backend are served, and the limits
 *   POST /v1/rank      multipart/form-data: files in fields `liked`, `disliked`, `candidates`
 *                      (repeated), text field `prompt`; or application/json:
 *                      {"liked": [img], "disliked": [img], "candidates": [img], "prompt": "..."}
 *                      with img = base64 (a data: URL too) or {"name": "...", "data": base64}
 *
 * Errors are JSON {"error": message, "field"?: name}: 400 for a bad request or image (naming the
 * field, e.g. "candidates[2] (cat.png)"), 413 over a size or count limit, 415 for another content
 * type, 429 when the queue is full, 503 while shutting down, 504 past the per-request timeout.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import type { Backbone, Logger } from '@userpref/core';
import { ImageInputError, RankRequestError, pairHistory, rankCandidates, readImage, type InputImage, type Ranking } from '@userpref/ranking';
import { JobTimeoutError, QueueFullError, RankQueue } from './queue';

/** What GET /v1/model reports: the served model, as the runner assembled it. */
export interface ServedModel {
  readonly backbone: string;
  readonly base: string;
  readonly adapter: string | null;
  readonly tokens: string | null;
  readonly backend: string;
  readonly device: string;
  /** Side of the square images are resized to before the backbone's processor. */
  readonly imageSize: number;
}

export interface RankLimits {
  /** Largest request body in bytes (JSON body; for multipart, the sum of the files). */
  readonly maxBodyBytes: number;
  /** Largest single image in bytes. */
  readonly maxImageBytes: number;
  readonly maxCandidates: number;
  /** Largest history, in liked / disliked pairs. */
  readonly maxReferencePairs: number;
  /** Longest prompt in characters. */
  readonly maxPromptChars: number;
  /** Requests that may wait behind the running one; more get 429. */
  readonly queue: number;
  /** Time from arrival in the queue to the end of a ranking; later gets 504. */
  readonly timeoutMs: number;
}

export const DEFAULT_LIMITS: RankLimits = {
  maxBodyBytes: 32 * 2 ** 20,
  maxImageBytes: 8 * 2 ** 20,
  maxCandidates: 64,
  maxReferencePairs: 32,
  maxPromptChars: 2000,
  queue: 8,
  timeoutMs: 60_000,
};

export interface RankServerOptions {
  readonly backbone: Backbone;
  readonly model: ServedModel;
  readonly limits?: Partial<RankLimits>;
  readonly logger?: Logger;
  /** Candidates per forward (default: the ranking library's). */
  readonly chunk?: number;
}

/** A request that breaks a limit (HTTP 413). */
class LimitError extends Error {
  readonly statusCode = 413;
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** A request that is malformed (HTTP 400). */
class BadRequestError extends Error {
  readonly statusCode = 400;
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const IMAGE_FIELDS = ['liked', 'disliked', 'candidates'] as const;
type ImageField = (typeof IMAGE_FIELDS)[number];
/** A request's images (checked) and prompt; candidateNames: what each candidate is reported as (its file name where given). */
type Collected = Record<ImageField, InputImage[]> & { prompt: string; candidateNames: string[] };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

type JsonImage = string | { name?: string; data: string };
interface JsonRankBody {
  liked?: JsonImage[];
  disliked?: JsonImage[];
  candidates: JsonImage[];
  prompt?: string;
}

/** The JSON body's shape, or a BadRequestError naming the first field that is wrong. */
function jsonBody(body: unknown): JsonRankBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequestError('send multipart/form-data, or a JSON object with liked, disliked, candidates and prompt');
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!['liked', 'disliked', 'candidates', 'prompt'].includes(key)) throw new BadRequestError(`unknown field '${key}' (expected liked, disliked, candidates, prompt)`, key);
  if (b.candidates === undefined) throw new BadRequestError('no candidate images to rank', 'candidates');
  for (const field of IMAGE_FIELDS) {
    const v = b[field];
    if (v === undefined) continue;
    if (!Array.isArray(v)) throw new BadRequestError(`${field} must be an array of images (base64 strings or {name, data})`, field);
    v.forEach((item, i) => {
      const ok = typeof item === 'string' || (typeof item === 'object' && item !== null && typeof (item as { data?: unknown }).data === 'string' && ['undefined', 'string'].includes(typeof (item as { name?: unknown }).name));
      if (!ok) throw new BadRequestError(`${field}[${i}] must be a base64 string or {name, data}`, `${field}[${i}]`);
    });
  }
  if (b.prompt !== undefined && typeof b.prompt !== 'string') throw new BadRequestError('prompt must be a string', 'prompt');
  return b as unknown as JsonRankBody;
}

export interface RankServer {
  readonly app: FastifyInstance;
  readonly queue: RankQueue;
  /** Listens on host:port (port 0: any free one); resolves to the base URL. */
  listen(port: number, host: string): Promise<string>;
  /**
   * Stops accepting connections (requests on open connections get 503), lets the requests in
   * flight and in the queue finish, then resolves.
   */
  close(): Promise<void>;
}

/** The service (not yet listening). */
export async function createRankServer(options: RankServerOptions): Promise<RankServer> {
  const limits: RankLimits = { ...DEFAULT_LIMITS, ...(options.limits ?? {}) };
  const maxImages = limits.maxCandidates + 2 * limits.maxReferencePairs;
  const queue = new RankQueue(limits.queue, limits.timeoutMs);
  const page = await fs.readFile(path.join(__dirname, 'page.html'), 'utf8');
  const app = Fastify({ logger: false, bodyLimit: limits.maxBodyBytes, return503OnClosing: true, forceCloseConnections: 'idle' });
  await app.register(multipart, {
    limits: { fileSize: limits.maxImageBytes, files: maxImages, fields: 4, parts: maxImages + 4, fieldSize: limits.maxPromptChars * 4 },
  });

  const checkCounts = (n: Record<ImageField, number>, prompt: string) => {
    if (n.candidates > limits.maxCandidates) throw new LimitError(`${n.candidates} candidates; at most ${limits.maxCandidates}`, 'candidates');
    for (const field of ['liked', 'disliked'] as const) {
      if (n[field] > limits.maxReferencePairs) throw new LimitError(`${n[field]} ${field} images; a history has at most ${limits.maxReferencePairs} pairs`, field);
    }
    if (prompt.length > limits.maxPromptChars) throw new LimitError(`the prompt has ${prompt.length} characters; at most ${limits.maxPromptChars}`, 'prompt');
  };
  const counts = (c: Collected) => ({ liked: c.liked.length, disliked: c.disliked.length, candidates: c.candidates.length });
  const read = (bytes: Uint8Array, field: string) => {
    if (bytes.byteLength > limits.maxImageBytes) throw new LimitError(`${field}: ${bytes.byteLength} bytes; an image may have at most ${limits.maxImageBytes}`, field);
    return readImage(bytes, field, { size: options.model.imageSize });
  };

  async function fromMultipart(req: FastifyRequest): Promise<Collected> {
    const c: Collected = { liked: [], disliked: [], candidates: [], prompt: '', candidateNames: [] };
    let total = 0;
    for await (const part of req.parts()) {
      if (part.type === 'field') {
        if (part.fieldname !== 'prompt') throw new BadRequestError(`unknown field '${part.fieldname}' (expected files in liked, disliked, candidates and a text field prompt)`, part.fieldname);
        c.prompt = String(part.value);
        checkCounts(counts(c), c.prompt);
        continue;
      }
      const field = part.fieldname as ImageField;
      if (!IMAGE_FIELDS.includes(field)) throw new BadRequestError(`unknown file field '${part.fieldname}' (expected liked, disliked or candidates)`, part.fieldname);
      const bytes = await part.toBuffer();
      total += bytes.byteLength;
      if (total > limits.maxBodyBytes) throw new LimitError(`the uploads exceed ${limits.maxBodyBytes} bytes`);
      const name = `${field}[${c[field].length}]${part.filename ? ` (${part.filename})` : ''}`;
      c[field].push(await read(bytes, name));
      if (field === 'candidates') c.candidateNames.push(part.filename || name);
      checkCounts(counts(c), c.prompt);
    }
    return c;
  }

  async function fromJson(body: JsonRankBody): Promise<Collected> {
    const c: Collected = { liked: [], disliked: [], candidates: [], prompt: body.prompt ?? '', candidateNames: [] };
    checkCounts({ liked: body.liked?.length ?? 0, disliked: body.disliked?.length ?? 0, candidates: body.candidates.length }, c.prompt);
    for (const field of IMAGE_FIELDS) {
      for (const [i, item] of (body[field] ?? []).entries()) {
        const given = typeof item === 'string' ? { data: item } : item;
        const name = `${field}[${i}]${given.name ? ` (${given.name})` : ''}`;
        const data = given.data.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
        if (!BASE64.test(data) || data.length % 4 === 1) throw new ImageInputError(name, 'not base64 data');
        c[field].push(await read(Buffer.from(data, 'base64'), name));
        if (field === 'candidates') c.candidateNames.push(given.name ?? name);
      }
    }
    return c;
  }

  app.setErrorHandler((err: Error & { statusCode?: number; field?: string }, req, reply) => {
    if (err instanceof ImageInputError) return reply.code(400).send({ error: err.message, field: err.source });
    if (err instanceof RankRequestError) return reply.code(400).send({ error: err.message });
    if (err instanceof QueueFullError) return reply.code(429).header('retry-after', '1').send({ error: err.message });
    if (err instanceof JobTimeoutError) return reply.code(504).send({ error: err.message });
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      options.logger?.error('ranking request failed', { error: err.stack ?? err.message, url: req.url });
      return reply.code(status).send({ error: status === 503 ? err.message : 'internal error' });
    }
    return reply.code(status).send(err.field ? { error: err.message, field: err.field } : { error: err.message });
  });

  // Once closing, answers carry "Connection: close", so a kept-alive connection does not hold the
  // shutdown for its idle timeout.
  let closing = false;
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });

  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(page));
  app.get('/healthz', async () => ({ status: 'ok', queue: queue.stats() }));
  app.get('/v1/model', async () => ({ ...options.model, readout: options.backbone.readout, historySession: typeof options.backbone.openHistory === 'function', limits }));
  app.post('/v1/rank', async (req: FastifyRequest): Promise<Ranking> => {
    const c = req.isMultipart() ? await fromMultipart(req) : await fromJson(jsonBody(req.body));
    const history = pairHistory(c.liked, c.disliked);
    if (c.candidates.length === 0) throw new BadRequestError('no candidate images to rank', 'candidates');
    const started = Date.now();
    const ranking = await queue.run((signal) => rankCandidates(options.backbone, { history, prompt: c.prompt, candidates: c.candidates.map((image, i) => ({ name: c.candidateNames[i], image })) }, { signal, chunk: options.chunk }));
    options.logger?.info('ranked', { candidates: c.candidates.length, referencePairs: c.liked.length, ms: Date.now() - started });
    return ranking;
  });
  return {
    app,
    queue,
    listen: async (port, host) => {
      await app.listen({ port, host });
      const address = app.server.address();
      if (!address || typeof address === 'string') throw new Error(`the server listens on ${String(address)}, not a TCP port`);
      return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
    },
    close: async () => {
      closing = true;
      await app.close();
      await queue.drain();
    },
  };
}
