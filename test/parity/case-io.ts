// Plumbing the parity handlers share: one CPU device for the run, components loaded once per model folder,
// case inputs as device tensors, outputs found by their golden-name suffix, token batches from the goldens.
import { type DiffusersComponent, openDiffusersModel, type DiffusersModel } from '../../src/checkpoint/diffusers.js';
import { Device } from '../../src/runtime/device.js';
import { fromFloat32 } from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import type { CaseContext, ParityCase } from './types.js';

let shared: Device | undefined;
/** The CPU device every handler of this run computes on (fp32). */
export function parityDevice(): Device {
  shared ??= new Device({ backend: 'cpu' });
  return shared;
}

const models = new Map<string, DiffusersModel>();
/** The set's model folder, opened once. */
export function modelOf(ctx: CaseContext): DiffusersModel {
  if (!ctx.modelDir) throw new Error('the fixture set has no model folder');
  let m = models.get(ctx.modelDir);
  if (!m) { m = openDiffusersModel(ctx.modelDir); models.set(ctx.modelDir, m); }
  return m;
}

const loaded = new Map<string, unknown>();
/** A component built once per (model folder, key) and kept for the rest of the run. */
export function cachedComponent<T>(ctx: CaseContext, key: string, build: (device: Device, model: DiffusersModel) => T): T {
  const id = `${ctx.modelDir}\u0000${key}`;
  if (!loaded.has(id)) loaded.set(id, build(parityDevice(), modelOf(ctx)));
  return loaded.get(id) as T;
}

/** Shorthand: the named component's folder entry (config + weights). */
export const componentOf = (ctx: CaseContext, name: string): DiffusersComponent => modelOf(ctx).component(name);

/** The case's input tensor `name` on the device, with its manifest shape. */
export function caseInput(c: ParityCase, ctx: CaseContext, name: string, device = parityDevice()): Tensor {
  const spec = c.inputs.find((i) => i.name === name);
  if (!spec) throw new Error(`case ${c.id} has no input ${name}`);
  return fromFloat32(device, ctx.goldens.readFloat32(name), spec.shape);
}

/** The golden name of the output ending in `suffix`. */
export function outputName(c: ParityCase, suffix: string): string {
  const spec = c.outputs.find((o) => o.name.endsWith(suffix));
  if (!spec) throw new Error(`case ${c.id} has no output ending in ${suffix}`);
  return spec.name;
}

/** A text_encoder case's token ids and attention mask, from its `*_input_ids` / `*_attention_mask` goldens. */
export function caseTokens(c: ParityCase, ctx: CaseContext): { ids: number[]; mask: number[]; batch: number; length: number } {
  const idsSpec = c.inputs.find((i) => i.name.endsWith('_input_ids'));
  const maskSpec = c.inputs.find((i) => i.name.endsWith('_attention_mask'));
  if (!idsSpec || !maskSpec) throw new Error('text_encoder case needs *_input_ids and *_attention_mask inputs');
  const [batch, length] = idsSpec.shape as [number, number];
  return {
    ids: Array.from(ctx.goldens.readBigInt64(idsSpec.name), Number),
    mask: Array.from(ctx.goldens.readBigInt64(maskSpec.name), Number),
    batch, length,
  };
}
