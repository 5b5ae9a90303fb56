// scheduler cases: set_timesteps(N) (with the call's sigma_min / mu), then N step() calls from sample_0 with
// the given model outputs; returns timesteps, sigmas and every prev_sample by golden name.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FlowScheduler, FlowMatchEulerDiscreteScheduler, createScheduler } from '../../../src/schedulers/index.js';
import { schedulerCallArguments } from '../../helpers/scheduler-call.js';
import type { CaseOutput, FamilyHandlers } from '../types.js';

export const family = 'generic';

const nameEnding = (names: { name: string }[], suffix: string): string | undefined => names.find((s) => s.name.endsWith(suffix))?.name;

export const handlers: FamilyHandlers = {
  scheduler: (c, ctx) => {
    const configPath = join(ctx.setDir, (c.config as string | undefined) ?? join(ctx.manifest.model_dir ?? 'model', 'scheduler', 'scheduler_config.json'));
    const scheduler: FlowScheduler = createScheduler(JSON.parse(readFileSync(configPath, 'utf8')));
    const { sigmaMin, mu } = schedulerCallArguments(c.call);
    if (sigmaMin !== undefined) {
      if (!(scheduler instanceof FlowMatchEulerDiscreteScheduler)) throw new Error('sigma_min is only settable on FlowMatchEuler');
      scheduler.sigmaMin = sigmaMin;
    }
    scheduler.setTimesteps(c.num_inference_steps as number, mu === undefined ? {} : { mu });
    const outputs: CaseOutput[] = [];
    const ts = nameEnding(c.outputs, '_timesteps'), sg = nameEnding(c.outputs, '_sigmas');
    if (ts) outputs.push({ name: ts, values: c.outputs.find((o) => o.name === ts)!.dtype === 'int64' ? BigInt64Array.from(scheduler.timesteps, (v) => BigInt(v)) : Float32Array.from(scheduler.timesteps) });
    if (sg) outputs.push({ name: sg, values: scheduler.sigmas });
    const sample0 = nameEnding(c.inputs, '_sample_0');
    if (sample0) {
      const prefix = sample0.slice(0, -'sample_0'.length);
      let sample = ctx.goldens.readFloat32(sample0);
      for (let i = 0; i < scheduler.timesteps.length; i++) {
        sample = scheduler.step(ctx.goldens.readFloat32(`${prefix}model_output_${i}`), scheduler.timesteps[i]!, sample);
        outputs.push({ name: `${prefix}prev_sample_${i}`, values: sample.slice() });
      }
    }
    return outputs;
  },
};
