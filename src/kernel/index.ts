// sgld's actor microkernel: actors in-thread or in worker threads, request/reply, supervision with restarts,
// dead letters, a msgpack codec that keeps typed arrays (large ones transferred, not copied), and
// SharedArrayBuffer primitives for threads of one process. It depends on node built-ins and @msgpack/msgpack
// only, so any Node app can embed it. See docs/kernel.md.
export { ActorSystem, type ActorSystemOptions } from './system.js';
export type {
  Actor, ActorContext, ActorRef, ActorStatus, AskOptions, DeadLetter, LifecycleEvent, SendOptions, SpawnOptions,
  WorkerSpawnOptions,
} from './actor.js';
export type { Backoff, RestartPolicy, SupervisionOptions } from './supervision.js';
export {
  ActorCrashedError, ActorStoppedError, AskTimeoutError, BarrierBrokenError, ChannelTimeoutError, FatalActorError,
  KernelError, RemoteError, WorkerExitedError, isFatalError, type SerialisedError, type StopReason,
} from './errors.js';
export { consoleLogger, type LogFields, type LogLevel, type Logger } from './logger.js';
export {
  OUT_OF_BAND_BYTES, decodeMessage, encodeMessage, transferListOf, type EncodeOptions, type EncodedMessage,
} from './codec.js';
export { SharedBarrier } from './shared-barrier.js';
export { SharedSlotChannel, type SlotChannelLayout } from './shared-slot-channel.js';
export type { SharedWaitOptions } from './shared-wait.js';
