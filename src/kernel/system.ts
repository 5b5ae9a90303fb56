// The actor system: the root of the supervision tree, the place dead letters and lifecycle events are heard,
// and the one call that shuts everything down.
import { pathToFileURL } from 'node:url';
import type {
  Actor, ActorContext, ActorRef, DeadLetter, LifecycleEvent, SpawnOptions, WorkerSpawnOptions,
} from './actor.js';
import { ActorCell, type Props, type SystemCore } from './cell.js';
import { encodeMessage } from './codec.js';
import { KernelError, isFatalError } from './errors.js';
import { LocalIncarnation } from './local-incarnation.js';
import { consoleLogger, withFields, type Logger } from './logger.js';
import { resolveSupervision } from './supervision.js';
import { WorkerIncarnation } from './worker-incarnation.js';

/** How to create an {@link ActorSystem}. */
export interface ActorSystemOptions {
  /** Where actor errors, crashes, restarts and unheard dead letters go (default {@link consoleLogger}). */
  logger?: Logger;
  /** Default timeout of `ask`, ms (default 30 000). */
  askTimeoutMs?: number;
}

/**
 * Root of a supervision tree. Top-level actors are spawned here (and supervised by it); `stop()` stops them all,
 * newest first, and leaves nothing behind that would keep the process alive.
 */
export class ActorSystem implements SystemCore {
  readonly logger: Logger;
  readonly askTimeoutMs: number;
  private readonly roots: ActorCell[] = [];
  private readonly deadLetterListeners = new Set<(letter: DeadLetter) => void>();
  private readonly lifecycleListeners = new Set<(event: LifecycleEvent) => void>();
  private stopping: Promise<void> | undefined;

  constructor(options: ActorSystemOptions = {}) {
    this.logger = options.logger ?? consoleLogger();
    this.askTimeoutMs = options.askTimeoutMs ?? 30_000;
  }

  /**
   * Spawns an in-thread actor. `create` makes a fresh behaviour for every (re)start. Returns at once; messages
   * sent before `preStart` finished wait for it.
   */
  spawn<M = any, R = unknown>(name: string, create: () => Actor<M, R>, options?: SpawnOptions): ActorRef<M, R> {
    return this.spawnCell(undefined, undefined, name, localProps(this, create, options), options);
  }

  /**
   * Spawns an actor in its own worker thread. `module` is the actor module (a `file:` URL, e.g.
   * `new URL('./device-actor.js', import.meta.url)`, or a path); the thread constructs its export
   * (`options.exportName`, default `default`) with `new Export(...args)`. `args` go through the codec (no
   * transfers; SharedArrayBuffers are shared) and are reused on every restart. A worker actor crashes when it
   * throws a fatal error, or when its thread exits, errors or is terminated unasked.
   */
  spawnWorker<M = any, R = unknown>(
    name: string, module: string | URL, args: readonly unknown[] = [], options: WorkerSpawnOptions = {},
  ): ActorRef<M, R> {
    return this.spawnCell(undefined, undefined, name, workerProps(module, args, options), options);
  }

  /** Listens to messages that could not be delivered. Returns the function that stops listening. */
  onDeadLetter(listener: (letter: DeadLetter) => void): () => void {
    this.deadLetterListeners.add(listener);
    return () => this.deadLetterListeners.delete(listener);
  }

  /** Listens to every actor's start, crash and stop. Returns the function that stops listening. */
  onLifecycle(listener: (event: LifecycleEvent) => void): () => void {
    this.lifecycleListeners.add(listener);
    return () => this.lifecycleListeners.delete(listener);
  }

  /** Stops one actor of this system (its children first); its supervisor hears a `stopped` event, no restart. */
  stopActor(ref: ActorRef): Promise<void> {
    for (const root of this.roots) {
      const cell = root.find(ref);
      if (cell !== undefined) return cell.stop('requested');
    }
    return Promise.resolve();
  }

  /**
   * Stops every actor, newest top-level actor first, each after its children: current messages finish, postStop
   * hooks run, worker threads get a stop message and are terminated if they do not exit in time. Idempotent;
   * no spawn is accepted afterwards.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const cell of [...this.roots].reverse()) await cell.stop('requested');
    })();
    return this.stopping;
  }

  /** @internal Reports a dead letter (to the listeners, or to the log when nobody listens). */
  deadLetter(letter: DeadLetter): void {
    if (this.deadLetterListeners.size === 0) {
      this.logger.warn('dead letter', { recipient: letter.recipient, reason: letter.reason, ask: letter.ask });
      return;
    }
    for (const listener of this.deadLetterListeners) this.callListener(listener, letter);
  }

  /** @internal */
  publish(event: LifecycleEvent): void {
    for (const listener of this.lifecycleListeners) this.callListener(listener, event);
  }

  /** @internal */
  forget(cell: ActorCell): void {
    const at = this.roots.indexOf(cell);
    if (at >= 0) this.roots.splice(at, 1);
  }

  /**
   * @internal Spawns under `parent` (a cell of this system) or at the top level. `hosted` serves the worker host,
   * whose one top-level actor keeps its full path and incarnation number and talks to a parent in another thread.
   */
  spawnCell(
    parent: ActorCell | undefined,
    hosted: { path: string; parentRef: ActorRef | undefined; incarnation: number } | undefined,
    name: string, props: Props, options: SpawnOptions | WorkerSpawnOptions | undefined,
  ): ActorRef {
    if (this.stopping !== undefined) throw new KernelError('the actor system is stopped', 'ERR_SYSTEM_STOPPED');
    if (typeof name !== 'string' || name.length === 0 || name.includes('/')) {
      throw new TypeError(`actor name must be a non-empty string without '/', got ${JSON.stringify(name)}`);
    }
    if (parent !== undefined && (parent.status === 'stopping' || parent.status === 'stopped')) {
      throw new KernelError(`cannot spawn under ${parent.path}: it is ${parent.status}`, 'ERR_ACTOR_STOPPED');
    }
    const siblings = parent?.children ?? this.roots;
    if (siblings.some((c) => c.name === name)) {
      throw new KernelError(`an actor named '${name}' already exists there`, 'ERR_ACTOR_NAME_TAKEN');
    }
    const path = hosted?.path ?? (parent === undefined ? name : `${parent.path}/${name}`);
    const cell = new ActorCell(
      this, parent, hosted?.parentRef ?? parent?.ref, name, path, props, resolveSupervision(options), hosted?.incarnation,
    );
    siblings.push(cell);
    cell.start();
    return cell.ref;
  }

  private callListener<T>(listener: (value: T) => void, value: T): void {
    try {
      listener(value);
    } catch (error) {
      this.logger.error('listener threw', { error });
    }
  }
}

/** @internal Props of an in-thread actor of `system`. */
export function localProps(system: ActorSystem, create: () => Actor, options: SpawnOptions | undefined): Props {
  const isFatal = options?.isFatal ?? isFatalError;
  return {
    kind: 'local',
    incarnate: (cell, incarnation, hooks) =>
      new LocalIncarnation(cell, incarnation, create, isFatal, hooks,
        (c, n, stopSelf) => makeContext(system, c, n, stopSelf), options?.stopTimeoutMs ?? 5000),
  };
}

function workerProps(module: string | URL, args: readonly unknown[], options: WorkerSpawnOptions): Props {
  encodeMessage(args, { outOfBandBytes: Infinity }); // args the codec cannot carry fail the spawn, here
  const spec = { moduleHref: moduleHref(module), args, options };
  return {
    kind: 'worker',
    incarnate: (cell, incarnation, hooks) => new WorkerIncarnation(cell, incarnation, spec, hooks),
  };
}

function moduleHref(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module)) return module; // already a URL (file:, data:, node:)
  if (module.startsWith('/') || module.startsWith('.')) return pathToFileURL(module).href;
  return module; // a bare specifier, resolved by the worker's import()
}

function makeContext(system: ActorSystem, cell: ActorCell, incarnation: number, stopSelf: () => void): ActorContext {
  return {
    self: cell.ref,
    parent: cell.parentRef,
    path: cell.path,
    incarnation,
    log: withFields(system.logger, { actor: cell.path }),
    spawn: (name, create, options) =>
      system.spawnCell(cell, undefined, name, localProps(system, create as () => Actor, options), options),
    spawnWorker: (name, module, args = [], options = {}) =>
      system.spawnCell(cell, undefined, name, workerProps(module, args, options), options),
    stopChild: (child) => {
      const target = cell.children.find((c) => c.ref === child);
      return target === undefined ? Promise.resolve() : target.stop('requested');
    },
    stop: stopSelf,
  };
}
