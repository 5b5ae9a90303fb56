// The in-thread parent of one rank group's DeviceActor. A worker actor reports to its parent (ctx.parent), so its
// step events and its lifecycle (started after a model load, crashed, stopped) arrive here, and are handed to the
// Supervisor's sink in mailbox order. Jobs do not pass through here: the Supervisor asks the device directly, so
// no event waits behind a long ask (docs/kernel.md, "Worker actors and their parent").
import type { Actor, ActorContext, ActorRef, LifecycleEvent, WorkerSpawnOptions } from '../kernel/index.js';
import type { DeviceActorSpec, DeviceEvent, DeviceRequest } from './device-protocol.js';

/** The DeviceActor module: the compiled .js, or its .ts under a TypeScript loader (workers inherit it). */
export const DEVICE_ACTOR_URL = new URL('./device-actor.js', import.meta.url);

export interface RankGroupSink {
  /** The device's ref (stable across its restarts), known once this group started. */
  spawned(device: ActorRef<DeviceRequest>): void;
  event(event: DeviceEvent): void;
  lifecycle(event: LifecycleEvent): void;
}

export class RankGroup implements Actor<DeviceEvent> {
  constructor(
    private readonly spec: DeviceActorSpec,
    private readonly sink: RankGroupSink,
    private readonly supervision: WorkerSpawnOptions,
  ) {}

  preStart(ctx: ActorContext<DeviceEvent>): void {
    this.sink.spawned(ctx.spawnWorker<DeviceRequest>(`device-${this.spec.rank}`, DEVICE_ACTOR_URL, [this.spec], this.supervision));
  }

  receive(event: DeviceEvent): void {
    this.sink.event(event);
  }

  onChildEvent(event: LifecycleEvent): void {
    this.sink.lifecycle(event);
  }
}
