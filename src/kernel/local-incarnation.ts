// An incarnation that runs its behaviour in this thread: a FIFO mailbox handled one message at a time (an async
// handler holds the next message back until it settles); messages are passed by reference.
import type { Actor, ActorContext, LifecycleEvent } from './actor.js';
import type { ActorCell, Incarnation, IncarnationHooks } from './cell.js';
import { asError } from './cell.js';
import type { Envelope } from './envelope.js';
import { ActorCrashedError, ActorStoppedError } from './errors.js';
import { TIMED_OUT, withTimeout } from './timeout.js';

/** Makes the context of one incarnation; `stopSelf` is what `ctx.stop()` calls. */
export type ContextFactory = (cell: ActorCell, incarnation: number, stopSelf: () => void) => ActorContext;

/** One life of an in-thread actor: its behaviour object and its FIFO mailbox. */
export class LocalIncarnation implements Incarnation {
  private behaviour: Actor | undefined;
  private readonly queue: Envelope[] = [];
  private state: 'starting' | 'running' | 'ending' = 'starting';
  private starting: Promise<void> | undefined;
  private startFailed = false;
  /** The running drain loop, while there is one. */
  private draining: Promise<void> | undefined;
  /** The envelope being handled. */
  private current: Envelope | undefined;
  private selfStopRequested = false;
  private stopRequested = false;
  private ending: Promise<Envelope[]> | undefined;
  private readonly ctx: ActorContext;

  constructor(
    private readonly cell: ActorCell,
    incarnation: number,
    private readonly create: () => Actor,
    private readonly isFatal: (error: unknown) => boolean,
    private readonly hooks: IncarnationHooks,
    makeContext: ContextFactory,
    private readonly stopTimeoutMs: number,
  ) {
    this.ctx = makeContext(cell, incarnation, () => this.requestSelfStop());
  }

  start(): Promise<void> {
    this.starting = (async () => {
      try {
        this.behaviour = this.create();
        await this.behaviour.preStart?.(this.ctx);
      } catch (error) {
        this.startFailed = true;
        throw error;
      }
      if (this.state !== 'starting') return; // stopped while starting
      this.state = 'running';
      if (this.selfStopRequested) this.end(undefined);
      else this.drain();
    })();
    return this.starting;
  }

  deliver(envelope: Envelope): void {
    this.queue.push(envelope);
    this.drain();
  }

  async stop(): Promise<Envelope[]> {
    this.stopRequested = true;
    if (this.state === 'starting') {
      const starting = this.starting;
      this.state = 'ending';
      if (starting !== undefined && await this.bounded(starting.catch(() => undefined), 'preStart') === TIMED_OUT) {
        return this.queue.splice(0);
      }
      if (this.startFailed) return this.queue.splice(0);
      await this.runPostStop();
      return this.queue.splice(0);
    }
    if (this.state === 'ending') return this.ending ?? [];
    this.state = 'ending';
    this.ending = (async () => {
      // The message being handled finishes (the loop then sees 'ending' and leaves), or its time runs out.
      if (this.draining !== undefined && await this.bounded(this.draining, 'the current message') === TIMED_OUT) {
        this.current?.reply?.reject(new ActorStoppedError(this.cell.path, 'requested'));
      }
      await this.runPostStop();
      return this.queue.splice(0);
    })();
    return this.ending;
  }

  private async bounded(promise: Promise<unknown>, what: string): Promise<unknown> {
    const outcome = await withTimeout(promise, this.stopTimeoutMs);
    if (outcome === TIMED_OUT) {
      this.ctx.log.warn(`stop did not wait any longer for ${what}`, { stopTimeoutMs: this.stopTimeoutMs });
    }
    return outcome;
  }

  private requestSelfStop(): void {
    this.selfStopRequested = true;
    if (this.state === 'running' && this.draining === undefined) this.end(undefined);
  }

  private drain(): void {
    if (this.state !== 'running' || this.draining !== undefined || this.queue.length === 0) return;
    this.draining = this.drainLoop();
  }

  private async drainLoop(): Promise<void> {
    while (this.state === 'running' && !this.selfStopRequested && this.queue.length > 0) {
      const envelope = this.queue.shift()!;
      this.current = envelope;
      const crash = await this.handle(envelope);
      this.current = undefined;
      if (crash !== undefined) {
        envelope.reply?.reject(new ActorCrashedError(this.cell.path, crash.error));
        if (this.state === 'running') this.end(crash);
        else this.cell.system.logger.error('actor failed fatally while stopping', { actor: this.cell.path, error: crash.error });
        break;
      }
    }
    this.draining = undefined;
    if (this.state === 'running' && this.selfStopRequested) this.end(undefined);
  }

  /** Handles one envelope; returns the crash when the error is fatal. */
  private async handle(envelope: Envelope): Promise<{ error: unknown } | undefined> {
    const behaviour = this.behaviour!;
    try {
      const result = envelope.kind === 'signal'
        ? await behaviour.onChildEvent?.(envelope.message as LifecycleEvent, this.ctx)
        : await behaviour.receive(envelope.message, this.ctx);
      envelope.reply?.resolve(result);
      return undefined;
    } catch (error) {
      if (this.fatal(error)) return { error };
      if (envelope.reply !== undefined) envelope.reply.reject(error);
      else this.ctx.log.error(envelope.kind === 'signal' ? 'onChildEvent failed' : 'message handling failed', { error });
      return undefined;
    }
  }

  private fatal(error: unknown): boolean {
    try {
      return this.isFatal(error);
    } catch {
      return true;
    }
  }

  /** Ends this incarnation on its own (crash or self-stop): children stop, postStop runs, then the cell hears. */
  private end(crash: { error: unknown } | undefined): void {
    this.state = 'ending';
    if (!this.stopRequested) this.hooks.ending();
    this.ending = (async () => {
      await this.cell.stopChildren();
      await this.runPostStop();
      return this.queue.splice(0);
    })();
    void this.ending.then((unprocessed) => {
      if (this.stopRequested) return; // stop() took over and hands these back itself
      if (crash !== undefined) this.hooks.crashed(asError(crash.error), unprocessed);
      else this.hooks.stoppedItself(unprocessed);
    });
  }

  private async runPostStop(): Promise<void> {
    try {
      await this.behaviour?.postStop?.(this.ctx);
    } catch (error) {
      this.ctx.log.error('postStop failed', { error });
    }
  }
}
