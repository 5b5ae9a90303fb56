// A fingerprint of the weights LoRA can change: SHA-256 per module over every tensor's name, dtype, shape and
// bytes, in name order. Equal digests mean bit-identical weights, so "unmerge restored the base" and "every rank
// holds the same weights" are checkable from outside the device. It reads every weight back to the host:
// a diagnostic, not something to call per request on a 14B model.
import { createHash } from 'node:crypto';
import type { LoraModuleWeights } from './merge.js';

export function weightsDigest(modules: Partial<Record<string, LoraModuleWeights>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [module, weights] of Object.entries(modules)) {
    if (!weights) continue;
    const hash = createHash('sha256');
    for (const name of [...weights.tensors.keys()].sort()) {
      const t = weights.tensors.get(name)!;
      hash.update(`${name}\0${t.dtype}\0${t.shape.join('x')}\0`);
      hash.update(t.toBytes());
    }
    out[module] = hash.digest('hex');
  }
  return out;
}
