/**
 * Causal self-attention of the text model over "segments" of a packed row matrix, written for the
 * single-threaded wasm backend (measured on this CPU, see bench/):
 *
 * - A batched matMul ([n, M, K] x [n, K, N], n > 1) leaves XNNPACK's fast path and runs ~10x slower
 *   than n plain 2-D matMuls, so each (sequence, KV head) pair is its own 2-D matMul. The G query
 *   heads that share a KV head are stacked as rows (token-major: row t*G + g), so one matMul serves
 *   the whole group and a causal mask [Tq, 1, Tk] broadcasts over the group.
 * - Causal block skipping: queries are cut into blocks; block [q0, q1) only multiplies the keys it
 *   can see ([0, offset + q1)), which removes almost half of the O(T^2) work of a long sequence.
 * - One custom gradient per (segment, KV head): the forward saves only q, k^T, v and the
 *   probabilities; the backward recomputes nothing, issues only plain matMuls whose second operand
 *   is the small one (XNNPACK through tfjs re-packs the second operand on every call, so
 *   [hd, rows] x [rows, Tk] runs ~4x slower than transposing and computing [Tk, rows] x [rows, hd]),
 *   and frees its temporaries at once (tfjs otherwise keeps every intermediate gradient until the
 *   whole backward pass ends).
 * - Keys are trimmed to the segment's real length, so right padding needs no mask at all.
 *
 * On the native tensorflow backend (and the JS cpu one) the same algorithm runs batched over the KV
 * heads instead (`batchedAttention`): libtensorflow's batched matMul is as fast as its 2-D one and
 * takes transpose flags for free, while every op dispatched costs tens of microseconds, so one
 * [K, rows, hd] product replaces K products plus their unstack/stack, no transposed key copy is made,
 * and the query blocks are fewer and larger.
 *
 * A segment is a run of query rows with its own keys: a whole sequence (keys = its own rows), or, for
 * the shared reference prefix (backbone pairLogits), a target suffix whose keys are the prefix rows
 * followed by its own rows (`causalOffset` = prefix length). Numerics are those of the plain
 * formulation (scores, additive mask, softmax, weighted sum), so the goldens are unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MASKED } from './ops';

/** A contiguous range of rows of a packed [N, width] matrix. */
export interface RowRange {
  readonly start: number;
  readonly len: number;
}

export interface AttentionSegment {
  /** Query rows of the packed matrix (segments tile the rows in order). */
  readonly query: RowRange;
  /** Key/value rows, concatenated in this order (absolute sequence order). */
  readonly keys: readonly RowRange[];
  /**
   * Query i sees concatenated key j iff j <= i + causalOffset (null: no causal mask). For a whole
   * sequence 0; for a suffix after a prefix of p keys, p.
   */
  readonly causalOffset: number | null;
  /** Mistral's sliding window: key j visible from query i when (i + causalOffset) - j < window. */
  readonly window?: number | null;
  /** 0/1 per concatenated key (holes, left padding); omitted = all keys real. */
  readonly keyValid?: ArrayLike<number>;
  /**
   * Block-diagonal attention of several independent items in one segment (e.g. the perceiver's
   * images): query i sees key j only when queryGroups[i] === keyGroups[j].
   */
  readonly groups?: { readonly query: ArrayLike<number>; readonly key: ArrayLike<number> };
}

/** One query block of a segment: rows [q0, q1) over keys [0, kEnd), with an optional additive mask. */
interface Block {
  readonly q0: number;
  readonly q1: number;
  readonly kEnd: number;
  /** [q1 - q0, 1, kEnd] or null when nothing in the block is masked. */
  readonly mask: tf.Tensor | null;
}

/** A segment with its blocks and masks, built once per forward and shared by all layers. */
export interface PlannedSegment extends AttentionSegment {
  readonly keyLen: number;
  readonly blocks: readonly Block[];
}

/**
 * Query-block size: large enough that per-op overhead stays small, at most 8 blocks a segment
 * (wasm), or 2 where an op costs more than its arithmetic at this size (tensorflow: measured on
 * `small` with 1.8k tokens, 2 blocks beat 1, 3 and 4).
 */
function blockSize(qLen: number, maxBlocks: number): number {
  return Math.max(128, Math.ceil(qLen / maxBlocks));
}

/** Backends whose kernels want per-head 2-D products (XNNPACK); others get the batched path. */
function perHeadBackend(): boolean {
  return tf.getBackend() === 'wasm';
}

/** Additive mask data of queries [q0, q1) over keys [0, kEnd) of a segment, or null if nothing is hidden. */
function maskData(seg: AttentionSegment, q0: number, q1: number, kEnd: number): Float32Array | null {
  const off = seg.causalOffset;
  const window = seg.window ?? null;
  let data: Float32Array | null = null;
  if (off !== null && !seg.keyValid && !seg.groups && (window === null || off + q1 - 1 < window)) {
    // Causal only (the common case): hide keys after each query with native fills.
    for (let t = q0; t < q1; t++) {
      const first = t + off + 1;
      if (first >= kEnd) continue;
      data ??= new Float32Array((q1 - q0) * kEnd);
      data.fill(MASKED, (t - q0) * kEnd + first, (t - q0 + 1) * kEnd);
    }
    return data;
  }
  for (let t = q0; t < q1; t++) {
    const qpos = off === null ? 0 : t + off;
    for (let j = 0; j < kEnd; j++) {
      const hidden =
        (off !== null && (j > qpos || (window !== null && qpos - j >= window))) ||
        (seg.keyValid !== undefined && !seg.keyValid[j]) ||
        (seg.groups !== undefined && seg.groups.query[t] !== seg.groups.key[j]);
      if (!hidden) continue;
      data ??= new Float32Array((q1 - q0) * kEnd);
      data[(t - q0) * kEnd + j] = MASKED;
    }
  }
  return data;
}

function keyCount(seg: AttentionSegment, index: number): number {
  const Tq = seg.query.len;
  const Tk = seg.keys.reduce((s, r) => s + r.len, 0);
  if (Tq <= 0 || Tk <= 0) throw new Error(`attention segment ${index} has ${Tq} queries and ${Tk} keys`);
  if (seg.keyValid && seg.keyValid.length !== Tk) throw new Error(`attention segment ${index}: keyValid has ${seg.keyValid.length} entries for ${Tk} keys`);
  if (seg.groups && (seg.groups.query.length !== Tq || seg.groups.key.length !== Tk)) throw new Error(`attention segment ${index}: groups cover ${seg.groups.query.length} queries / ${seg.groups.key.length} keys, expected ${Tq} / ${Tk}`);
  return Tk;
}

/**
 * Blocks and masks of the segments (tensors created in the caller's scope; dispose with
 * `disposePlan` or let the enclosing tidy free them). `blocked: false` gives one block per segment.
 */
export function planSegments(segments: readonly AttentionSegment[], blocked = true): PlannedSegment[] {
  const maxBlocks = perHeadBackend() ? 8 : 2;
  return segments.map((seg, si) => {
    const Tq = seg.query.len;
    const Tk = keyCount(seg, si);
    const off = seg.causalOffset;
    const bq = off === null || !blocked ? Tq : blockSize(Tq, maxBlocks);
    const blocks: Block[] = [];
    for (let q0 = 0; q0 < Tq; q0 += bq) {
      const q1 = Math.min(Tq, q0 + bq);
      const kEnd = off === null || !blocked ? Tk : Math.max(1, Math.min(Tk, off + q1));
      const data = maskData(seg, q0, q1, kEnd);
      blocks.push({ q0, q1, kEnd, mask: data ? tf.tensor3d(data, [q1 - q0, 1, kEnd]) : null });
    }
    return { ...seg, keyLen: Tk, blocks };
  });
}

export function disposePlan(plan: readonly PlannedSegment[]): void {
  for (const s of plan) for (const b of s.blocks) b.mask?.dispose();
}

/** softmax(q kt + mask) v of one block (plain ops, differentiable by tfjs); returns [out, probs]. */
function blockForward(q: tf.Tensor2D, kt: tf.Tensor2D, v: tf.Tensor2D, G: number, b: Block, Tk: number, hd: number): [tf.Tensor2D, tf.Tensor2D] {
  const rows = (b.q1 - b.q0) * G;
  const qi = rows === q.shape[0] ? q : tf.slice(q, [b.q0 * G, 0], [rows, hd]);
  const kti = b.kEnd === Tk ? kt : tf.slice(kt, [0, 0], [hd, b.kEnd]);
  const vi = b.kEnd === Tk ? v : tf.slice(v, [0, 0], [b.kEnd, hd]);
  let s: tf.Tensor = tf.matMul(qi, kti);
  if (b.mask) s = tf.reshape(tf.add(tf.reshape(s, [b.q1 - b.q0, G, b.kEnd]), b.mask), [rows, b.kEnd]);
  const p = tf.softmax(s) as tf.Tensor2D;
  return [tf.matMul(p, vi), p];
}

/**
 * One KV head with its G query heads: q [Tq*G, hd] (rows token-major, already scaled), kt [hd, Tk],
 * v [Tk, hd] -> [Tq*G, hd], with the custom gradient described at the top.
 */
function headAttention(q: tf.Tensor2D, kt: tf.Tensor2D, v: tf.Tensor2D, G: number, seg: PlannedSegment): tf.Tensor2D {
  const hd = q.shape[1];
  const Tk = seg.keyLen;
  const f = tf.customGrad((qq, kk, vv, save) => {
    const [q2, kt2, v2] = [qq as tf.Tensor2D, kk as tf.Tensor2D, vv as tf.Tensor2D];
    const outs: tf.Tensor2D[] = [];
    const probs: tf.Tensor2D[] = [];
    for (const b of seg.blocks) {
      const [o, p] = blockForward(q2, kt2, v2, G, b, Tk, hd);
      outs.push(o);
      probs.push(p);
    }
    (save as tf.GradSaveFunc)([q2, kt2, v2, ...probs]);
    return {
      value: outs.length === 1 ? outs[0] : (tf.concat(outs, 0) as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sq, skt, sv, ...sp] = saved as tf.Tensor2D[];
          const vt = tf.transpose(sv) as tf.Tensor2D; // [hd, Tk]
          const ktT = tf.transpose(skt) as tf.Tensor2D; // [Tk, hd]
          const dq: tf.Tensor2D[] = [];
          let dk: tf.Tensor2D | null = null;
          let dv: tf.Tensor2D | null = null;
          const acc = (sum: tf.Tensor2D | null, part: tf.Tensor2D, kEnd: number): tf.Tensor2D => {
            const full = kEnd === Tk ? part : (tf.pad(part, [[0, Tk - kEnd], [0, 0]]) as tf.Tensor2D);
            return sum ? tf.add(sum, full) : full;
          };
          // XNNPACK (through tfjs) is fast when the second operand is small: every product below has
          // a [*, hd] or [hd, *] second operand; the two [rows, kEnd] transposes cost one pass each.
          seg.blocks.forEach((b, i) => {
            const rows = (b.q1 - b.q0) * G;
            const whole = rows === sq.shape[0];
            const dyi = (whole ? dy : tf.slice(dy, [b.q0 * G, 0], [rows, hd])) as tf.Tensor2D;
            const qi = whole ? sq : (tf.slice(sq, [b.q0 * G, 0], [rows, hd]) as tf.Tensor2D);
            const p = sp[i];
            const dp = tf.matMul(dyi, b.kEnd === Tk ? vt : (tf.slice(vt, [0, 0], [hd, b.kEnd]) as tf.Tensor2D));
            // softmax: dS = P * (dP - rowsum(dP * P)); the mask is a constant.
            const ds = tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))) as tf.Tensor2D;
            dq.push(tf.matMul(ds, b.kEnd === Tk ? ktT : (tf.slice(ktT, [0, 0], [b.kEnd, hd]) as tf.Tensor2D)));
            dk = acc(dk, tf.matMul(tf.transpose(ds) as tf.Tensor2D, qi), b.kEnd);
            dv = acc(dv, tf.matMul(tf.transpose(p) as tf.Tensor2D, dyi), b.kEnd);
          });
          return [dq.length === 1 ? dq[0] : tf.concat(dq, 0), tf.transpose(dk!), dv!];
        }),
    };
  });
  return f(q, kt, v) as tf.Tensor2D;
}

/**
 * All KV heads at once: q [K, Tq*G, hd] (rows token-major, already scaled), k and v [K, Tk, hd] ->
 * [K, Tq*G, hd]. The blocks and the custom gradient of headAttention, with batched products and
 * transpose flags.
 */
function batchedAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, G: number, seg: PlannedSegment): tf.Tensor3D {
  const [K, , hd] = q.shape;
  const Tk = seg.keyLen;
  const rowsOf = (t: tf.Tensor3D, b: Block) => {
    const rows = (b.q1 - b.q0) * G;
    return rows === t.shape[1] ? t : (tf.slice(t, [0, b.q0 * G, 0], [K, rows, hd]) as tf.Tensor3D);
  };
  const keysOf = (t: tf.Tensor3D, b: Block) => (b.kEnd === Tk ? t : (tf.slice(t, [0, 0, 0], [K, b.kEnd, hd]) as tf.Tensor3D));
  const f = tf.customGrad((qq, kk, vv, save) => {
    const [q3, k3, v3] = [qq as tf.Tensor3D, kk as tf.Tensor3D, vv as tf.Tensor3D];
    const outs: tf.Tensor3D[] = [];
    const probs: tf.Tensor3D[] = [];
    for (const b of seg.blocks) {
      const rows = (b.q1 - b.q0) * G;
      let s: tf.Tensor = tf.matMul(rowsOf(q3, b), keysOf(k3, b), false, true);
      if (b.mask) s = tf.reshape(tf.add(tf.reshape(s, [K, b.q1 - b.q0, G, b.kEnd]), b.mask), [K, rows, b.kEnd]);
      const p = tf.softmax(s) as tf.Tensor3D;
      outs.push(tf.matMul(p, keysOf(v3, b)));
      probs.push(p);
    }
    (save as tf.GradSaveFunc)([q3, k3, v3, ...probs]);
    return {
      value: outs.length === 1 ? outs[0] : (tf.concat(outs, 1) as tf.Tensor3D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sq, sk, sv, ...sp] = saved as tf.Tensor3D[];
          const dq: tf.Tensor3D[] = [];
          let dk: tf.Tensor3D | null = null;
          let dv: tf.Tensor3D | null = null;
          const acc = (sum: tf.Tensor3D | null, part: tf.Tensor3D, kEnd: number): tf.Tensor3D => {
            const full = kEnd === Tk ? part : (tf.pad(part, [[0, 0], [0, Tk - kEnd], [0, 0]]) as tf.Tensor3D);
            return sum ? tf.add(sum, full) : full;
          };
          seg.blocks.forEach((b, i) => {
            const dyi = rowsOf(dy as tf.Tensor3D, b);
            const qi = rowsOf(sq, b);
            const ki = keysOf(sk, b);
            const vi = keysOf(sv, b);
            const p = sp[i];
            const dp = tf.matMul(dyi, vi, false, true);
            // softmax: dS = P * (dP - rowsum(dP * P)); the mask is a constant.
            const ds = tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))) as tf.Tensor3D;
            dq.push(tf.matMul(ds, ki));
            dk = acc(dk, tf.matMul(ds, qi, true, false), b.kEnd);
            dv = acc(dv, tf.matMul(p, dyi, true, false), b.kEnd);
          });
          return [dq.length === 1 ? dq[0] : tf.concat(dq, 1), dk!, dv!];
        }),
    };
  });
  return f(q, k, v) as tf.Tensor3D;
}

export interface SegmentAttentionResult {
  /** [Nq, H*hd] in the row order of the query matrix. */
  readonly out: tf.Tensor2D;
  /** Per segment [H, Tq, Tk] probabilities (only when asked). */
  readonly probs?: tf.Tensor3D[];
}

/**
 * Attention of every segment. q [Nq, H*hd] (rotated, not yet scaled), k and v [Nk, K*hd] packed row
 * matrices; head h reads KV head floor(h / G) (transformers' repeat_kv).
 */
export function segmentAttention(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  plan: readonly PlannedSegment[],
  dims: { heads: number; kvHeads: number; headDim: number },
  wantProbs = false,
): SegmentAttentionResult {
  const { heads: H, kvHeads: K, headDim: hd } = dims;
  const G = H / K;
  if (!Number.isInteger(G)) throw new Error(`attention: ${H} heads are not a multiple of ${K} KV heads`);
  const qs = tf.mul(q, 1 / Math.sqrt(hd)) as tf.Tensor2D;
  const outs: tf.Tensor2D[] = [];
  const probs: tf.Tensor3D[] = [];
  let expected = 0;
  for (const seg of plan) {
    const Tq = seg.query.len;
    const Tk = seg.keyLen;
    if (seg.query.start !== expected) throw new Error(`attention segments must tile the query rows in order (segment at row ${seg.query.start}, expected ${expected})`);
    expected += Tq;
    const qSeg = Tq === qs.shape[0] ? qs : (tf.slice(qs, [seg.query.start, 0], [Tq, H * hd]) as tf.Tensor2D);
    const rows = (x: tf.Tensor2D) => {
      const parts = seg.keys.map((r) => (r.start === 0 && r.len === x.shape[0] ? x : tf.slice(x, [r.start, 0], [r.len, K * hd])));
      return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
    };
    if (!wantProbs && !perHeadBackend()) {
      // q [K, Tq*G, hd] (token-major rows), k and v [K, Tk, hd]; K = 1 needs no transpose.
      const q3 = (K === 1 ? tf.reshape(qSeg, [1, Tq * G, hd]) : tf.reshape(tf.transpose(tf.reshape(qSeg, [Tq, K, G, hd]), [1, 0, 2, 3]), [K, Tq * G, hd])) as tf.Tensor3D;
      const heads = (x: tf.Tensor2D) => (K === 1 ? tf.reshape(rows(x), [1, Tk, hd]) : tf.transpose(tf.reshape(rows(x), [Tk, K, hd]), [1, 0, 2])) as tf.Tensor3D;
      const o3 = batchedAttention(q3, heads(k), heads(v), G, seg);
      outs.push((K === 1 ? tf.reshape(o3, [Tq, H * hd]) : tf.reshape(tf.transpose(tf.reshape(o3, [K, Tq, G, hd]), [1, 0, 2, 3]), [Tq, H * hd])) as tf.Tensor2D);
      continue;
    }
    // Per KV head: q [Tq*G, hd] (token-major rows), k^T [hd, Tk], v [Tk, hd].
    const qh = K === 1 ? [tf.reshape(qSeg, [Tq * G, hd]) as tf.Tensor2D] : (tf.unstack(tf.reshape(tf.transpose(tf.reshape(qSeg, [Tq, K, G, hd]), [1, 0, 2, 3]), [K, Tq * G, hd])) as tf.Tensor2D[]);
    const kth = tf.unstack(tf.transpose(tf.reshape(rows(k), [Tk, K, hd]), [1, 2, 0])) as tf.Tensor2D[];
    const vh = K === 1 ? [tf.reshape(rows(v), [Tk, hd]) as tf.Tensor2D] : (tf.unstack(tf.transpose(tf.reshape(rows(v), [Tk, K, hd]), [1, 0, 2])) as tf.Tensor2D[]);
    const perHead: tf.Tensor2D[] = [];
    const headProbs: tf.Tensor[] = [];
    for (let kh = 0; kh < K; kh++) {
      if (wantProbs) {
        // Analysis path: the full [Tq*G, Tk] map in one block (plain ops, tfjs autodiff).
        const data = maskData(seg, 0, Tq, Tk);
        const full = { q0: 0, q1: Tq, kEnd: Tk, mask: data ? tf.tensor3d(data, [Tq, 1, Tk]) : null };
        const [o, p] = blockForward(qh[kh], kth[kh], vh[kh], G, full, Tk, hd);
        perHead.push(o);
        headProbs.push(tf.transpose(tf.reshape(p, [Tq, G, Tk]), [1, 0, 2]));
      } else {
        perHead.push(headAttention(qh[kh], kth[kh], vh[kh], G, seg));
      }
    }
    const o = K === 1 ? perHead[0] : tf.reshape(tf.transpose(tf.reshape(tf.stack(perHead), [K, Tq, G, hd]), [1, 0, 2, 3]), [Tq, H * hd]);
    outs.push(tf.reshape(o, [Tq, H * hd]) as tf.Tensor2D);
    if (wantProbs) probs.push((K === 1 ? headProbs[0] : tf.concat(headProbs, 0)) as tf.Tensor3D);
  }
  if (expected !== q.shape[0]) throw new Error(`attention segments cover ${expected} of ${q.shape[0]} query rows`);
  const out = outs.length === 1 ? outs[0] : (tf.concat(outs, 0) as tf.Tensor2D);
  return wantProbs ? { out, probs } : { out };
}

