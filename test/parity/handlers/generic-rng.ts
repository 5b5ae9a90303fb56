// rng cases: torch.randn(shape, generator=torch.Generator('cpu').manual_seed(seed), dtype=float32).
import { TorchGenerator } from '../../../src/runtime/random.js';
import type { FamilyHandlers } from '../types.js';

export const family = 'generic';

export const handlers: FamilyHandlers = {
  rng: (c) => {
    const call = c.call as { seed: number | string; shape: number[]; dtype?: string; generator?: string };
    if (call.generator && call.generator !== 'cpu') throw new Error(`unsupported generator ${call.generator}`);
    if (call.dtype && call.dtype !== 'float32') throw new Error(`unsupported dtype ${call.dtype}`);
    const gen = new TorchGenerator(BigInt(call.seed));
    return [{ name: c.outputs[0]!.name, values: gen.randn(call.shape) }];
  },
};
