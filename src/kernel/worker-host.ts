// Entry point of a worker actor's thread. It loads the actor module, constructs the actor inside a small actor
// system of its own (so the mailbox, context, children and dead letters work exactly as in-thread), and bridges
// that actor to its cell in the parent thread: messages in, replies and the actor's tells/asks to its parent
// out, logs forwarded, lifecycle reported.
import { parentPort, workerData } from 'node:worker_threads';
import type { ActorRef, ActorStatus, AskOptions, SendOptions } from './actor.js';
import { decodeMessage, encodeMessage, transferListOf, type EncodedMessage } from './codec.js';
import { PendingReply } from './envelope.js';
import {
  ActorCrashedError, ActorStoppedError, RemoteError, serialiseError,
} from './errors.js';
import { toPlainFields, type LogFields, type LogLevel, type Logger } from './logger.js';
import { ActorSystem, localProps } from './system.js';
import type { FromWorker, ReplyFailure, ToWorker, WorkerBoot } from './worker-protocol.js';

const port = parentPort;
if (port === null) throw new Error('worker-host.ts is the entry of a worker thread, not a module to import');
const boot = workerData as WorkerBoot;

function post(message: FromWorker, payload?: EncodedMessage): void {
  port!.postMessage(message, payload === undefined ? [] : transferListOf(payload));
}

const forward = (level: LogLevel) => (msg: string, fields?: LogFields) =>
  post({ t: 'log', level, msg, fields: toPlainFields(fields) });
const logger: Logger = { debug: forward('debug'), info: forward('info'), warn: forward('warn'), error: forward('error') };

const system = new ActorSystem({ logger, askTimeoutMs: boot.askTimeoutMs });
let shuttingDown = false;

// ctx.parent of the hosted actor: asks are correlated here, the parent thread answers them.
const parentAsks = new Map<number, PendingReply>();
let nextParentAskId = 1;
const parentRef: ActorRef | undefined = boot.parentPath === undefined ? undefined : {
  path: boot.parentPath,
  get status(): ActorStatus {
    return shuttingDown ? 'stopped' : 'running';
  },
  tell(message: unknown, options?: SendOptions): void {
    const payload = encodeMessage(message, options?.transfer ? { transfer: options.transfer } : {});
    post({ t: 'tell', p: payload }, payload);
  },
  ask<T>(message: unknown, options?: AskOptions): Promise<T> {
    const id = nextParentAskId++;
    const reply = new PendingReply(boot.parentPath!, options?.timeoutMs ?? boot.askTimeoutMs, () => parentAsks.delete(id));
    parentAsks.set(id, reply);
    try {
      if (shuttingDown) throw new ActorStoppedError(boot.path, 'requested');
      const payload = encodeMessage(message, options?.transfer ? { transfer: options.transfer } : {});
      post({ t: 'ask', id, p: payload }, payload);
    } catch (error) {
      reply.reject(error);
    }
    return reply.promise as Promise<T>;
  },
};

/** Kernel failures of the hosted actor itself travel as such, so the parent rebuilds the right error. */
function failureOf(error: unknown): ReplyFailure | undefined {
  if (error instanceof ActorStoppedError && error.actor === boot.path) return 'stopped';
  if (error instanceof ActorCrashedError && error.actor === boot.path) return 'crashed';
  return undefined;
}

function replyTo(id: number, outcome: Promise<unknown>): void {
  outcome.then((value) => {
    let payload: EncodedMessage;
    try {
      payload = encodeMessage(value);
    } catch (error) {
      post({ t: 'reply', id, ok: false, error: serialiseError(error) });
      return;
    }
    post({ t: 'reply', id, ok: true, p: payload }, payload);
  }, (error: unknown) => {
    const failure = failureOf(error);
    const serialised = serialiseError(failure === 'crashed' ? (error as Error).cause : error);
    post({ t: 'reply', id, ok: false, error: serialised, ...(failure ? { failure } : {}) });
  });
}

async function shutDown(): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  await system.stop();
  for (const reply of parentAsks.values()) reply.reject(new ActorStoppedError(boot.path, 'requested'));
  post({ t: 'stopped' });
  port!.close(); // nothing else of ours is left, so the thread exits
}

async function main(): Promise<void> {
  let construct: new (...args: unknown[]) => object;
  let args: unknown[];
  try {
    const module = (await import(boot.moduleHref)) as Record<string, unknown>;
    const exported = module[boot.exportName];
    if (typeof exported !== 'function') {
      throw new TypeError(`${boot.moduleHref} has no export '${boot.exportName}' to construct`);
    }
    construct = exported as new (...args: unknown[]) => object;
    args = decodeMessage(boot.args) as unknown[];
  } catch (error) {
    post({ t: 'startFailed', error: serialiseError(error) });
    return;
  }

  system.onLifecycle((event) => {
    if (event.path !== boot.path) return;
    if (event.type === 'started') post({ t: 'ready' });
    else if (event.type === 'crashed') post({ t: 'fatal', error: serialiseError(event.error) });
    else if (event.reason === 'self') {
      post({ t: 'selfStopped' });
      void shutDown();
    }
  });
  system.onDeadLetter((letter) => {
    let payload: EncodedMessage;
    try {
      payload = encodeMessage(letter.message);
    } catch {
      payload = encodeMessage(String(letter.message));
    }
    post({ t: 'deadLetter', recipient: letter.recipient, p: payload, ask: letter.ask, reason: letter.reason }, payload);
  });

  const name = boot.path.slice(boot.path.lastIndexOf('/') + 1);
  // The hosted actor itself never restarts here: its cell in the parent thread supervises it.
  const actor = system.spawnCell(undefined, { path: boot.path, parentRef, incarnation: boot.incarnation }, name,
    localProps(system, () => new construct(...args) as never, { stopTimeoutMs: boot.stopTimeoutMs }), { restart: 'temporary' });

  port!.on('message', (message: ToWorker) => {
    switch (message.t) {
      case 'tell':
      case 'ask': {
        let decoded: unknown;
        try {
          decoded = decodeMessage(message.p);
        } catch (error) {
          if (message.t === 'ask') post({ t: 'reply', id: message.id, ok: false, error: serialiseError(error) });
          else logger.error('undecodable message', { error });
          return;
        }
        if (message.t === 'tell') actor.tell(decoded);
        else replyTo(message.id, actor.ask(decoded, { timeoutMs: Infinity }));
        return;
      }
      case 'reply': {
        const reply = parentAsks.get(message.id);
        if (reply === undefined) return;
        if (message.ok) {
          try {
            reply.resolve(decodeMessage(message.p));
          } catch (error) {
            reply.reject(error);
          }
        } else {
          reply.reject(message.failure === 'stopped' ? new ActorStoppedError(boot.parentPath!, 'requested')
            : message.failure === 'crashed' ? new ActorCrashedError(boot.parentPath!, new RemoteError(message.error))
              : new RemoteError(message.error));
        }
        return;
      }
      case 'stop':
        void shutDown();
        return;
    }
  });
}

void main();
