// One CPU rank of parallel test runs, in its own worker thread: loads the Wan pipeline once on a one-thread CPU
// device, then for each job joins the process groups it is given (shm collectives) and runs its replica's
// request. Posts back the final latents (every rank has them), the frames (the leader only) and the bytes its
// collectives received.
import { parentPort, workerData } from 'node:worker_threads';
import { RankParallel } from '../../src/parallel/rank-context.js';
import type { RankTopology } from '../../src/parallel/topology.js';
import { WanPipeline } from '../../src/pipelines/wan/pipeline.js';
import type { WanGenerateRequest } from '../../src/pipelines/wan/request.js';
import { Device } from '../../src/runtime/device.js';

export interface RankJob {
  topology: RankTopology;
  /** One request per replica. */
  requests: WanGenerateRequest[];
}

export type RankReply =
  | { ok: true; rank: number; latents: Float32Array; frames: number; pixels: Float32Array; bytesReceived: number }
  | { ok: false; rank: number; error: string };

const device = new Device({ backend: 'cpu', threads: 1 });
const pipe = WanPipeline.load((workerData as { modelDir: string }).modelDir, { device });

parentPort!.on('message', async (job: RankJob | 'close') => {
  if (job === 'close') {
    pipe.dispose();
    device.close();
    parentPort!.close();
    return;
  }
  const rank = job.topology.coords.rank;
  const parallel = RankParallel.join(job.topology, device, { timeoutMs: 60_000 });
  pipe.parallel = parallel;
  try {
    const result = await pipe.generate(job.requests[job.topology.coords.replica]!);
    parentPort!.postMessage({
      ok: true, rank, latents: result.latents, frames: result.frames, pixels: result.data, bytesReceived: parallel.bytesReceived(),
    } satisfies RankReply);
  } catch (e) {
    parallel.abort(); // release peers blocked on this rank
    parentPort!.postMessage({ ok: false, rank, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) } satisfies RankReply);
  } finally {
    pipe.parallel = null;
    parallel.close();
  }
});
