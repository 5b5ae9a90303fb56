// DeviceActor: one device rank in its own worker thread. It owns the rank's Device and the loaded pipeline (loaded
// once in preStart, again after every restart), runs one generation or LoRA operation at a time, tells its parent
// a progress event per pipeline step, and answers with the frames as one transferred buffer.
//
// Failure policy: a cancelled job answers `cancelled`; a LoRA mistake (LoraError) answers as data; anything else
// thrown while generating is fatal, so the kernel crashes this actor, fails that job's ask, and restarts the thread
// with the model reloaded: a native failure may have left the device in a state nobody should trust.
import type { Actor, ActorContext } from '../kernel/index.js';
import { LoraError, LoraManager } from '../lora/index.js';
import { CancelledError, toUint8Frames } from '../pipelines/types.js';
import { Device } from '../runtime/device.js';
import type {
  DeviceActorSpec, DeviceEvent, DeviceFault, DeviceRequest, GenerateReply, GenerationRun, LoraOperation, LoraReply,
} from './device-protocol.js';
import { type LoadedPipeline, loadPipeline } from './loaded-pipeline.js';

export default class DeviceActor implements Actor<DeviceRequest> {
  private device: Device | undefined;
  private pipeline: LoadedPipeline | undefined;
  private lora: LoraManager | undefined;

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
    const loaded: DeviceEvent = { type: 'loaded', seconds: (performance.now() - t0) / 1000, pipelineClass: this.pipeline.pipelineClass };
    ctx.parent?.tell(loaded);
  }

  async receive(message: DeviceRequest, ctx: ActorContext<DeviceRequest>): Promise<GenerateReply | LoraReply> {
    switch (message.type) {
      case 'generate': return this.generate(message, ctx);
      case 'lora': return this.loraOperation(message.op);
    }
  }

  postStop(): void {
    this.pipeline?.dispose();
    this.device?.close();
  }

  private async generate(message: Extract<DeviceRequest, { type: 'generate' }>, ctx: ActorContext<DeviceRequest>): Promise<GenerateReply> {
    const pipeline = this.pipeline!, device = this.device!;
    const cancelFlag = new Int32Array(message.cancel);
    const controller = new AbortController();
    const fault = this.spec.allowFaults ? message.fault : undefined;
    const pixels: Uint8Array[] = [];
    let width = 0, height = 0, frames = 0, denoiseSeconds = 0;
    try {
      for (let i = 0; i < message.runs.length; i++) {
        const run: GenerationRun = message.runs[i]!;
        let runDenoiseSeconds = 0;
        const result = await pipeline.run(run, {
          signal: controller.signal,
          onProgress: (p) => {
            // The flag is checked at every step report; the pipeline then stops before its next step.
            if (Atomics.load(cancelFlag, 0) !== 0) controller.abort('cancelled');
            if (p.phase === 'denoising') runDenoiseSeconds = p.elapsed;
            const event: DeviceEvent = {
              type: 'progress', jobId: message.jobId, run: i, runs: message.runs.length, phase: p.phase, step: p.step, total: p.total, elapsed: p.elapsed,
            };
            ctx.parent?.tell(event);
            if (fault && i === 0 && p.phase === 'denoising' && p.step === fault.atStep) injectFault(fault);
          },
        });
        denoiseSeconds += runDenoiseSeconds;
        width = result.width;
        height = result.height;
        frames = result.frames;
        pixels.push(...toUint8Frames(result));
      }
    } catch (e) {
      if (e instanceof CancelledError) return { status: 'cancelled', width, height, frames, denoiseSeconds, peakBytes: 0 };
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { fatal: true });
    }
    return { status: 'completed', width, height, frames, pixels: concat(pixels), denoiseSeconds, peakBytes: device.memoryStats().peak };
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
