// A device rank's pipeline behind one interface, whichever family model_index.json names: Wan (text-to-video,
// text-to-image as one frame, image-to-image through the VAE) or Z-Image (text-to-image, image-to-image). Runs in
// the DeviceActor's thread.
import type { LoraModuleName } from '../lora/index.js';
import type { LoraModuleWeights } from '../lora/merge.js';
import type { RankParallel } from '../parallel/rank-context.js';
import { type FloatFrames, type ProgressCallback } from '../pipelines/types.js';
import type { WanPipeline } from '../pipelines/wan/pipeline.js';
import type { ZImagePipeline } from '../pipelines/zimage/pipeline.js';
import type { Device } from '../runtime/device.js';
import type { GenerationRun } from './device-protocol.js';
import { readModelProfile } from './model-profile.js';

export interface RunOptions {
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

export interface LoadedPipeline {
  readonly pipelineClass: string;
  /** LoRA family name (src/lora) and the modules an adapter can target. */
  readonly loraFamily: string;
  loraModules(): Partial<Record<LoraModuleName, LoraModuleWeights>>;
  run(run: GenerationRun, options: RunOptions): Promise<FloatFrames>;
  /**
   * Serve requests together with the other ranks of a replica (sequence / CFG sharding, leader-only text encoding
   * and decoding). Absent for families without parallel ranks (Z-Image): their replicas are one rank each.
   */
  attachParallel?(parallel: RankParallel): void;
  dispose(): void;
}

/** Loads the pipeline of a Diffusers folder onto `device`; only that family's code is imported. */
export async function loadPipeline(dir: string, device: Device): Promise<LoadedPipeline> {
  const { family } = readModelProfile(dir);
  if (family === 'wan') {
    const [{ WanPipeline }, { wanImageToImage }] = await Promise.all([import('../pipelines/wan/pipeline.js'), import('../pipelines/wan/image-to-image.js')]);
    return wanPipeline(WanPipeline.load(dir, { device }), wanImageToImage);
  }
  const { ZImagePipeline } = await import('../pipelines/zimage/pipeline.js');
  return zImagePipeline(ZImagePipeline.load(dir, { device }));
}

function wanPipeline(pipe: WanPipeline, imageToImage: typeof import('../pipelines/wan/image-to-image.js').wanImageToImage): LoadedPipeline {
  return {
    pipelineClass: 'WanPipeline',
    loraFamily: 'wan',
    loraModules: () => ({ transformer: pipe.transformer.store }),
    run: async (r, { onProgress, signal }) => {
      const common = {
        prompt: r.prompt, negativePrompt: r.negativePrompt, width: r.width, height: r.height,
        numInferenceSteps: r.numInferenceSteps, guidanceScale: r.guidanceScale, seed: r.seed,
        ...(r.maxSequenceLength !== undefined ? { maxSequenceLength: r.maxSequenceLength } : {}),
      };
      if (r.image) return imageToImage(pipe, { ...common, image: r.image, ...(r.strength !== undefined ? { strength: r.strength } : {}) }, { onProgress, signal });
      return pipe.generate({ ...common, numFrames: r.numFrames }, { onProgress, signal });
    },
    attachParallel: (parallel) => { pipe.parallel = parallel; },
    dispose: () => pipe.dispose(),
  };
}

function zImagePipeline(pipe: ZImagePipeline): LoadedPipeline {
  const transformer = pipe.transformer as { store?: LoraModuleWeights };
  return {
    pipelineClass: 'ZImagePipeline',
    loraFamily: 'zimage',
    loraModules: () => (transformer.store ? { transformer: transformer.store } : {}),
    run: (r, { onProgress, signal }) => pipe.generate({
      prompt: r.prompt, negativePrompt: r.negativePrompt, width: r.width, height: r.height,
      numInferenceSteps: r.numInferenceSteps, guidanceScale: r.guidanceScale, seed: r.seed,
      ...(r.maxSequenceLength !== undefined ? { maxSequenceLength: r.maxSequenceLength } : {}),
      ...(r.image ? { image: r.image } : {}),
      ...(r.strength !== undefined ? { strength: r.strength } : {}),
    }, { onProgress, signal }),
    dispose: () => pipe.dispose(),
  };
}
