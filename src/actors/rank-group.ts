// The in-thread parent of every DeviceActor (one per rank, each in its own worker thread). A worker actor reports
// to its parent (ctx.parent), so the ranks' step events and lifecycles (started after a model load, crashed,
// stopped) arrive here, and are handed to the Supervisor's sink in mailbox order, tagged with their rank. Jobs do
// not pass through here: the Supervisor asks the devices directly, so no event waits behind a long ask
// (docs/kernel.md, "Worker actors and their parent").
import type { Actor, ActorContext, ActorRef, LifecycleEvent, WorkerSpawnOptions } from '../kernel/index.js';
import type { DeviceActorSpec, DeviceEvent, DeviceRequest } from './device-protocol.js';

/** The DeviceActor module: the compiled .js, or its .ts under a TypeScript loader (workers inherit it). */
export const DEVICE_ACTOR_URL = new URL('./device-actor.js', import.meta.url);

export interface RankGroupSink {
  /** A rank's ref (stable across its restarts), known once this group started. */
  spawned(rank: number, device: ActorRef<DeviceRequest>): void;
  event(event: DeviceEvent): void;
  lifecycle(rank: number, event: LifecycleEvent): void;
}

export class RankGroup implements Actor<DeviceEvent> {
  readonly #ranks = new Map<ActorRef, number>();

  constructor(
    private readonly specs: readonly DeviceActorSpec[],
    private readonly sink: RankGroupSink,
    private readonly supervision: WorkerSpawnOptions,
  ) {}

  preStart(ctx: ActorContext<DeviceEvent>): void {
    for (const spec of this.specs) {
      const device = ctx.spawnWorker<DeviceRequest>(`device-${spec.rank}`, DEVICE_ACTOR_URL, [spec], this.supervision);
      this.#ranks.set(device, spec.rank);
      this.sink.spawned(spec.rank, device);
    }
  }

  receive(event: DeviceEvent): void {
    this.sink.event(event);
  }

  onChildEvent(event: LifecycleEvent): void {
    const rank = this.#ranks.get(event.actor);
    if (rank !== undefined) this.sink.lifecycle(rank, event);
  }
}
