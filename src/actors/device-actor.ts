// DeviceActor: one device rank in its own worker thread. It owns the rank's Device and the loaded pipeline (loaded
// once in preStart, again after every restart), runs one generation or LoRA operation at a time, tells its parent
// a progress event per pipeline step, and answers with the frames as one transferred buffer.
//
// When its replica has several ranks (sequence or CFG parallel), it joins the replica's process groups after
// loading and serves every request together with its peers: the leader (member 0) encodes the prompt, decodes,
// reports progress and answers with the pixels; the others answer without pixels.
//
// Failure policy: a cancelled job answers `cancelled`; a LoRA mistake (LoraError) answers as data; anything else
// thrown while generating is fatal, so the kernel crashes this actor, fails that job's ask, and restarts the thread
// with the model reloaded: a native failure may have left the device in a state nobody should trust. A failing
// rank first breaks its process groups, so peers blocked in a collective fail too instead of waiting for it.
import { type Actor, type ActorContext, FatalActorError, SharedBarrier } from '../kernel/index.js';
import { LoraError, LoraManager } from '../lora/index.js';
import { weightsDigest } from '../lora/weights-digest.js';
import { DEFAULT_PEER_TIMEOUT_MS, RankParallel } from '../parallel/rank-context.js';
import { CancelledError, toUint8Frames } from '../pipelines/types.js';
import { Device } from '../runtime/device.js';
import type {
  DeviceActorSpec, DigestReply, DeviceEvent, DeviceFault, DeviceRequest, GenerateReply, GenerationRun, LoraOperation, LoraReply,
} from './device-protocol.js';
import { type LoadedPipeline, loadPipeline } from './loaded-pipeline.js';

export default class DeviceActor implements Actor<DeviceRequest> {
  private device: Device | undefined;
  private pipeline: LoadedPipeline | undefined;
  private lora: LoraManager | undefined;
  /** The replica's process groups, when it has more than this rank. */
  private parallel: RankParallel | undefined;

  constructor(private readonly spec: DeviceActorSpec) {}

  async preStart(ctx: ActorContext<DeviceRequest>): Promise<void> {
    const t0 = performance.now();
    this.device = new Device({ backend: this.spec.backend, index: this.spec.backend === 'cuda' ? this.spec.rank : 0, threads: this.spec.threads });
    try {
      this.pipeline = await loadPipeline(this.spec.modelPath, this.device);
    } catch (e) {
      this.device.close();
      this.device = undefined;
      throw e;
    }
    const modules = this.pipeline.loraModules();
    if (Object.keys(modules).length > 0) this.lora = new LoraManager({ family: this.pipeline.loraFamily, modules });
    await this.joinReplica();
    const loaded: DeviceEvent = { type: 'loaded', rank: this.spec.rank, seconds: (performance.now() - t0) / 1000, pipelineClass: this.pipeline.pipelineClass };
    ctx.parent?.tell(loaded);
  }

  async receive(message: DeviceRequest, ctx: ActorContext<DeviceRequest>): Promise<GenerateReply | LoraReply | DigestReply | undefined> {
    switch (message.type) {
      case 'generate': return this.generate(message, ctx);
      case 'lora': return this.loraOperation(message.op);
      case 'digest': return { type: 'digest', modules: weightsDigest(this.pipeline!.loraModules()) };
      case 'restart':
        if (message.incarnation === ctx.incarnation) throw new FatalActorError('restart: a peer rank of this replica failed; the replica reloads together');
        return undefined;
    }
  }

  postStop(): void {
    this.parallel?.close();
    this.pipeline?.dispose();
    this.device?.close();
  }

  /**
   * Joins the replica's process groups when it has several ranks. A restarted rank joins the same buffers again,
   * once the Supervisor has repaired the barriers its replica's failure broke (it resets them when every old
   * incarnation of the replica has ended, so a joining rank is never woken by the reset nor finds them broken).
   */
  private async joinReplica(): Promise<void> {
    const { topology } = this.spec;
    if (topology.groups.replica.size === 1) return;
    const pipeline = this.pipeline!;
    if (!pipeline.attachParallel) {
      throw new Error(`${pipeline.pipelineClass} has no sequence or CFG parallelism: serve it with replicas of one rank (--dp-size)`);
    }
    const barriers = Object.values(topology.groups).map((g) => SharedBarrier.attach(g.barrier));
    const deadline = performance.now() + (this.spec.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS);
    while (barriers.some((b) => b.broken)) {
      if (performance.now() > deadline) throw new Error(`rank ${this.spec.rank}: the process groups of its replica were not repaired in time`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.parallel = RankParallel.join(topology, this.device!, {
      ...(this.spec.spin !== undefined ? { spin: this.spec.spin } : {}),
      ...(this.spec.peerTimeoutMs !== undefined ? { timeoutMs: this.spec.peerTimeoutMs } : {}),
    });
    pipeline.attachParallel(this.parallel);
  }

  private async generate(message: Extract<DeviceRequest, { type: 'generate' }>, ctx: ActorContext<DeviceRequest>): Promise<GenerateReply> {
    const pipeline = this.pipeline!, device = this.device!, parallel = this.parallel;
    const leader = parallel === undefined || parallel.leader;
    const cancelFlag = new Int32Array(message.cancel);
    // Only the leader's signal ever fires: the pipeline broadcasts its decision to the peers at every step, so all
    // ranks of the replica stop at the same step (a rank stopping alone would leave its peers in a collective).
    const controller = new AbortController();
    const fault = this.spec.allowFaults ? message.fault : undefined;
    const pixels: Uint8Array[] = [];
    let width = 0, height = 0, frames = 0, denoiseSeconds = 0;
    try {
      for (let i = 0; i < message.runs.length; i++) {
        const run: GenerationRun = message.runs[i]!;
        let runDenoiseSeconds = 0;
        let stopped = false;
        try {
          const result = await pipeline.run(run, {
            signal: controller.signal,
            onProgress: (p) => {
              // The flag is checked at every step report; the pipeline then stops before its next step.
              if (leader && Atomics.load(cancelFlag, 0) !== 0) controller.abort('cancelled');
              if (p.phase === 'denoising') runDenoiseSeconds = p.elapsed;
              if (leader) {
                const event: DeviceEvent = {
                  type: 'progress', rank: this.spec.rank, jobId: message.jobId, run: i, runs: message.runs.length,
                  phase: p.phase, step: p.step, total: p.total, elapsed: p.elapsed,
                };
                ctx.parent?.tell(event);
              }
              if (fault && i === 0 && p.phase === 'denoising' && p.step === fault.atStep) injectFault(fault);
            },
          });
          denoiseSeconds += runDenoiseSeconds;
          width = result.width;
          height = result.height;
          frames = result.frames;
          pixels.push(...toUint8Frames(result));
        } catch (e) {
          if (!(e instanceof CancelledError)) throw e;
          stopped = true;
        }
        // After every run the replica agrees whether the job goes on: the leader may have stopped after the run's
        // last collective (a local check before decoding), and its peers must not start the next run without it.
        const cancelled = parallel === undefined ? stopped
          : parallel.replica.broadcastValue(stopped || Atomics.load(cancelFlag, 0) !== 0 ? 1 : 0, 0) !== 0;
        if (cancelled) return { status: 'cancelled', width, height, frames, denoiseSeconds, peakBytes: 0 };
      }
    } catch (e) {
      parallel?.abort(); // release the peers blocked in a collective with this rank
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { fatal: true });
    }
    const peakBytes = device.memoryStats().peak;
    if (!leader) return { status: 'completed', width: 0, height: 0, frames: 0, denoiseSeconds, peakBytes };
    return { status: 'completed', width, height, frames, pixels: concat(pixels), denoiseSeconds, peakBytes };
  }

  private loraOperation(op: LoraOperation): LoraReply {
    if (!this.lora) return { ok: false, status: 400, code: 'lora_not_supported', param: null, message: 'This pipeline does not support LoRA adapters' };
    try {
      let warnings: string[] = [];
      if (op.op === 'set') warnings = this.lora.set(op.entries).warnings;
      else if (op.op === 'merge') this.lora.merge(op.target, op.strength);
      else this.lora.unmerge(op.target);
      return { ok: true, listing: this.lora.list(), warnings };
    } catch (e) {
      if (e instanceof LoraError) return { ok: false, status: e.status, code: e.code, param: e.param ?? null, message: e.message };
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { fatal: true });
    }
  }
}

function injectFault(fault: DeviceFault): never {
  if (fault.kind === 'exit') process.exit(70); // in a worker thread this ends the thread, as a native abort would
  throw new Error('injected device fault (test only)');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
