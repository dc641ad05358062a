import { FEATURE_BITS, hashedFeatures, weightedFeatureSum } from "./features.js";

/** One labelled text for training. */
export interface TrainingRow {
  readonly text: string;
  readonly label: 0 | 1;
  /** Where the row comes from; with `groupBalance`, large groups weigh less per row. */
  readonly group?: string;
}

export interface LinearModel {
  readonly bits: number;
  readonly bias: number;
  /**
   * One weight per bucket: as trained (float), or as shipped (int8, each times {@link scale}: a quarter
   * of the memory, 256 KB, so scoring's random reads stay in the CPU's cache).
   */
  readonly weights: Float32Array | Int8Array;
  /** What a weight is multiplied by (1 when absent: float weights). */
  readonly scale?: number;
}

/**
 * The shipped model's training settings, shared by `npm run train:injection` and the leave-one-source-out
 * bench. Every source weighs the same inside its class: the corpus mixes sources of 5 to 3,845 rows, and
 * with rows weighed alike the model learned the largest benign sources' style rather than what an
 * attack is (leave-one-source-out FPR 0.033 → 0.018, TPR 0.587 → 0.599; see docs/guards.md).
 */
export const TRAINING = { epochs: 4, groupBalance: 1 } as const;

/** A small seeded PRNG (mulberry32): training is reproducible run to run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Logistic regression over hashed n-gram features, trained with AdaGrad SGD and L2, classes weighted
 * to balance, a fixed seed for the shuffles. A hand-written trainer: the model is twenty lines of
 * arithmetic, and no maintained npm package trains sparse hashed logistic regression without a native
 * or Python runtime.
 */
export function trainLogistic(
  rows: readonly TrainingRow[],
  options: {
    epochs?: number;
    learningRate?: number;
    l2?: number;
    seed?: number;
    bits?: number;
    groupBalance?: number;
  } = {},
): LinearModel {
  const bits = options.bits ?? FEATURE_BITS;
  const epochs = options.epochs ?? 6;
  const lr = options.learningRate ?? 0.2;
  const l2 = options.l2 ?? 1e-6;
  const random = rng(options.seed ?? 20261127);
  const size = 1 << bits;
  const w = new Float32Array(size);
  const g2 = new Float32Array(size).fill(1e-8);
  let bias = 0;
  let biasG2 = 1e-8;
  const features = rows.map((r) => hashedFeatures(r.text, bits));
  // Each row's weight: the two classes weigh the same in total; inside a class, a row of a group of n
  // rows weighs n^-groupBalance (0: every row alike, 1: every group alike).
  const alpha = options.groupBalance ?? 0;
  const cell = (r: TrainingRow) => `${r.label}\0${r.group ?? ""}`;
  const cellSize = new Map<string, number>();
  for (const r of rows) cellSize.set(cell(r), (cellSize.get(cell(r)) ?? 0) + 1);
  const raw = rows.map((r) => (cellSize.get(cell(r)) as number) ** -alpha);
  const classTotal = [0, 0];
  rows.forEach((r, i) => (classTotal[r.label] = (classTotal[r.label] as number) + (raw[i] as number)));
  const rowWeight = rows.map(
    (r, i) => ((raw[i] as number) * rows.length) / (2 * Math.max(1e-9, classTotal[r.label] as number)),
  );
  const order = rows.map((_, i) => i);
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    for (const idx of order) {
      const f = features[idx] as Uint32Array;
      if (f.length === 0) continue;
      const value = 1 / Math.sqrt(f.length);
      let z = bias;
      for (const k of f) z += (w[k] as number) * value;
      const p = 1 / (1 + Math.exp(-z));
      const label = (rows[idx] as TrainingRow).label;
      const g = (p - label) * (rowWeight[idx] as number);
      for (const k of f) {
        const grad = g * value + l2 * (w[k] as number);
        g2[k] = (g2[k] as number) + grad * grad;
        w[k] = (w[k] as number) - (lr * grad) / Math.sqrt(g2[k]);
      }
      biasG2 += g * g;
      bias -= (lr * g) / Math.sqrt(biasG2);
    }
  }
  return { bits, bias, weights: w };
}

/** The model's probability that `text` is an attack. */
export function scoreLinear(model: LinearModel, text: string): number {
  const sum = weightedFeatureSum(text, model.weights, model.bits) * (model.scale ?? 1);
  return 1 / (1 + Math.exp(-(model.bias + sum)));
}

/** Packs a model as int8 weights with one scale (base64), the shipped form. */
export function packModel(model: LinearModel): { bits: number; bias: number; scale: number; weights: string } {
  let max = 0;
  for (const v of model.weights) max = Math.max(max, Math.abs(v * (model.scale ?? 1)));
  const scale = max / 127 || 1;
  const q = new Int8Array(model.weights.length);
  for (let i = 0; i < q.length; i++) q[i] = Math.round(((model.weights[i] as number) * (model.scale ?? 1)) / scale);
  return { bits: model.bits, bias: model.bias, scale, weights: Buffer.from(q.buffer).toString("base64") };
}

/**
 * Unpacks {@link packModel}'s form. The weights stay int8 (scored as they are, times the scale): the
 * sum of a text's weights is the same up to float rounding (under 1e-7 on the corpus), and scoring
 * a 2 KB prompt took 38 instead of 45 µs against the float copy's 1 MB.
 */
export function unpackModel(packed: { bits: number; bias: number; scale: number; weights: string }): LinearModel {
  const raw = Buffer.from(packed.weights, "base64");
  // A copy: the decoded buffer may be a slice of Node's shared pool.
  const weights = new Int8Array(raw.byteLength);
  weights.set(new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength));
  return { bits: packed.bits, bias: packed.bias, weights, scale: packed.scale };
}
