// pipeline cases: the whole WanPipeline call from the golden initial latents; per step the conditional and
// unconditional noise predictions and the latents after scheduler.step, then the frames in [0, 1].
import { WanPipeline } from '../../../src/pipelines/wan/pipeline.js';
import type { CaseOutput, FamilyHandlers } from '../types.js';

export const family = 'WanPipeline';

const pipelines = new Map<string, WanPipeline>();
function pipelineFor(dir: string): WanPipeline {
  let p = pipelines.get(dir);
  if (!p) { p = WanPipeline.load(dir); pipelines.set(dir, p); }
  return p;
}

interface PipelineCall {
  prompt: string; negative_prompt?: string; height: number; width: number; num_frames: number;
  num_inference_steps: number; guidance_scale: number; latents: string; max_sequence_length?: number; output_type?: string;
}

export const handlers: FamilyHandlers = {
  pipeline: async (c, ctx) => {
    const call = c.call as PipelineCall;
    if (call.output_type && call.output_type !== 'np') throw new Error(`output_type ${call.output_type} not handled`);
    const prefix = call.latents.replace(/latents_init$/, '');
    const pipe = pipelineFor(ctx.modelDir!);
    const outputs: CaseOutput[] = [];
    const result = await pipe.generate({
      prompt: call.prompt, negativePrompt: call.negative_prompt, height: call.height, width: call.width,
      numFrames: call.num_frames, numInferenceSteps: call.num_inference_steps, guidanceScale: call.guidance_scale,
      latents: ctx.goldens.readFloat32(call.latents), maxSequenceLength: call.max_sequence_length,
    }, {
      onStepTensors: (i, t) => {
        outputs.push({ name: `${prefix}noise_pred_cond_${i}`, values: t.cond });
        if (t.uncond) outputs.push({ name: `${prefix}noise_pred_uncond_${i}`, values: t.uncond });
        outputs.push({ name: `${prefix}latents_after_step_${i}`, values: t.latents });
      },
    });
    outputs.push({ name: `${prefix}frames`, values: result.data });
    return outputs;
  },
};
