// One CPU rank of `npm run bench:parallel`, in its own worker thread: the mid-size Wan transformer with random
// weights, joined to its process groups, timing denoise steps (one CFG step: the conditional and unconditional
// predictions) and counting the bytes each kind of group received per step.
import { parentPort, workerData } from 'node:worker_threads';
import { RandomWeightSource } from '../src/models/random-weights.js';
import { WanTransformer3DModel } from '../src/models/wan/transformer.js';
import { RankParallel } from '../src/parallel/rank-context.js';
import type { RankTopology } from '../src/parallel/topology.js';
import { Device } from '../src/runtime/device.js';
import { cat, fromFloat32 } from '../src/runtime/ops.js';
import { TorchGenerator } from '../src/runtime/random.js';
import { scoped } from '../src/runtime/tensor.js';
import { noisePredictions } from '../src/pipelines/wan/pipeline.js';

export interface BenchRankJob {
  topology: RankTopology;
  threads: number;
  spin: number;
  transformer: Record<string, unknown>;
  latentShape: number[];
  textRows: number;
  steps: number;
}

export interface BenchRankReply {
  rank: number;
  stepSeconds: number[];
  bytesPerStep: Record<string, number>;
}

const job = workerData as BenchRankJob;
const device = new Device({ backend: 'cpu', threads: job.threads });
const model = new WanTransformer3DModel(device, job.transformer, new RandomWeightSource(7));
const parallel = RankParallel.join(job.topology, device, { spin: job.spin });
const textDim = model.config.textDim;
const latents = fromFloat32(device, new TorchGenerator(1).randn(job.latentShape), job.latentShape);
const text = scoped(() => cat([
  fromFloat32(device, new TorchGenerator(2).randn([1, job.textRows, textDim]), [1, job.textRows, textDim]),
  fromFloat32(device, new TorchGenerator(3).randn([1, job.textRows, textDim]), [1, job.textRows, textDim]),
], 0));

/** One CFG step as the pipeline runs it: both branches as a batch of 2, or this rank's branch + exchange. */
function cfgStep(t: number): void {
  scoped(() => noisePredictions(model, latents, t, text, true, parallel)).free();
}

cfgStep(999); // warm-up: caches, RoPE tables, allocator
parallel.replica.barrier();
const before = parallel.bytesByGroup();
const stepSeconds: number[] = [];
for (let i = 0; i < job.steps; i++) {
  parallel.replica.barrier(); // every rank starts the step together, so the time is the slowest rank's
  const t0 = performance.now();
  cfgStep(900 - i);
  parallel.replica.barrier();
  stepSeconds.push((performance.now() - t0) / 1000);
}
const after = parallel.bytesByGroup();
const bytesPerStep = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, (v - before[k as keyof typeof before]) / job.steps]));
parentPort!.postMessage({ rank: job.topology.coords.rank, stepSeconds, bytesPerStep } satisfies BenchRankReply);
parallel.close();
model.free();
device.close();
