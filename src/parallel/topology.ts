// Which rank does what: the process groups of a parallel layout (spec 10.2, docs/parallelism.md).
//
// Ranks are numbered replica-major, then CFG branch, then ring, then Ulysses:
//   rank = ((replica * cfg + branch) * ring + ringIndex) * ulysses + ulyssesIndex
// so a Ulysses group is a run of consecutive ranks (the all-to-all, the busiest collective, stays between
// neighbours) and a sequence-parallel group (ring x ulysses) is consecutive too. Sequence shard i of a
// sequence-parallel group belongs to its rank i = ringIndex * ulysses + ulyssesIndex, so after the Ulysses
// all-to-all a ring rank holds the contiguous block of its Ulysses group's shards.
//
// Every group gets its own shared buffers, made once by the Supervisor and handed to each rank's worker in its
// spawn spec (SharedArrayBuffers cross threads by reference).
import { SharedBarrier, SharedSlotChannel } from '../kernel/index.js';

export interface LayoutDegrees {
  /** Data-parallel replicas (dp). */
  dp: number;
  /** 2 when the CFG branches run on different ranks. */
  cfg: number;
  ulysses: number;
  ring: number;
}

/** What a rank needs to join one process group (plain data: it crosses to the rank's worker). */
export interface GroupSpec {
  /** `replica`, `cfg`, `sp`, `ulysses` or `ring`, with the replica index: for logs and errors. */
  name: string;
  /** This rank's index in the group. */
  rank: number;
  size: number;
  /** Global ranks of the members, in group-rank order. */
  members: number[];
  /** A SharedBarrier for the group's members. */
  barrier: SharedArrayBuffer;
  /** A SharedSlotChannel, one slot per member: exchange descriptors (shm) or the NCCL unique id. */
  slots: SharedArrayBuffer;
}

export interface RankCoordinates {
  rank: number;
  replica: number;
  /** 0: conditional branch, 1: unconditional (when cfg = 2). */
  branch: number;
  ringIndex: number;
  ulyssesIndex: number;
  /** Index in the sequence-parallel group: ringIndex * ulysses + ulyssesIndex. */
  spIndex: number;
}

/** A rank's place and groups. `replica` holds every rank serving the same requests; its rank 0 leads. */
export interface RankTopology {
  coords: RankCoordinates;
  degrees: LayoutDegrees;
  groups: { replica: GroupSpec; cfg: GroupSpec; sp: GroupSpec; ulysses: GroupSpec; ring: GroupSpec };
}

/** Bytes of one member's exchange slot: room for 32 tensor descriptors (collectives.ts) or an NCCL id. */
export const GROUP_SLOT_BYTES = 4096;

export const worldSize = (d: LayoutDegrees): number => d.dp * d.cfg * d.ring * d.ulysses;

export function coordinatesOf(rank: number, d: LayoutDegrees): RankCoordinates {
  const ulyssesIndex = rank % d.ulysses;
  const ringIndex = Math.floor(rank / d.ulysses) % d.ring;
  const branch = Math.floor(rank / (d.ulysses * d.ring)) % d.cfg;
  const replica = Math.floor(rank / (d.ulysses * d.ring * d.cfg));
  return { rank, replica, branch, ringIndex, ulyssesIndex, spIndex: ringIndex * d.ulysses + ulyssesIndex };
}

export function rankOf(c: Omit<RankCoordinates, 'rank' | 'spIndex'>, d: LayoutDegrees): number {
  return ((c.replica * d.cfg + c.branch) * d.ring + c.ringIndex) * d.ulysses + c.ulyssesIndex;
}

type GroupKind = keyof RankTopology['groups'];

/** The key two ranks share exactly when they are in the same group of this kind. */
function groupKey(kind: GroupKind, c: RankCoordinates): string {
  switch (kind) {
    case 'replica': return `${c.replica}`;
    case 'cfg': return `${c.replica}/${c.ringIndex}/${c.ulyssesIndex}`;
    case 'sp': return `${c.replica}/${c.branch}`;
    case 'ulysses': return `${c.replica}/${c.branch}/${c.ringIndex}`;
    case 'ring': return `${c.replica}/${c.branch}/${c.ulyssesIndex}`;
  }
}

const KINDS: readonly GroupKind[] = ['replica', 'cfg', 'sp', 'ulysses', 'ring'];

/** Every rank's topology, with fresh shared buffers for every group. */
export function buildTopologies(d: LayoutDegrees): RankTopology[] {
  for (const [k, v] of Object.entries(d)) if (!Number.isInteger(v) || v < 1) throw new RangeError(`degree ${k} must be a positive integer, got ${v}`);
  const n = worldSize(d);
  const coords = Array.from({ length: n }, (_, r) => coordinatesOf(r, d));
  const groups = new Map<string, { members: number[]; barrier: SharedArrayBuffer; slots: SharedArrayBuffer }>();
  for (const kind of KINDS) {
    for (const c of coords) {
      const key = `${kind}:${groupKey(kind, c)}`;
      let g = groups.get(key);
      if (!g) {
        g = { members: [], barrier: new SharedArrayBuffer(0), slots: new SharedArrayBuffer(0) };
        groups.set(key, g);
      }
      g.members.push(c.rank); // coords are in rank order, and each group's rank order is its member order
    }
  }
  for (const g of groups.values()) {
    g.barrier = SharedBarrier.create(g.members.length).buffer;
    g.slots = SharedSlotChannel.create({ slots: g.members.length, slotBytes: GROUP_SLOT_BYTES }).buffer;
  }
  return coords.map((c) => {
    const spec = (kind: GroupKind): GroupSpec => {
      const g = groups.get(`${kind}:${groupKey(kind, c)}`)!;
      return { name: `${kind}[${groupKey(kind, c)}]`, rank: g.members.indexOf(c.rank), size: g.members.length, members: g.members, barrier: g.barrier, slots: g.slots };
    };
    return { coords: c, degrees: { ...d }, groups: { replica: spec('replica'), cfg: spec('cfg'), sp: spec('sp'), ulysses: spec('ulysses'), ring: spec('ring') } };
  });
}

/** Every distinct group buffer of a set of topologies (the Supervisor breaks and resets these barriers). */
export function groupBarriers(topologies: readonly RankTopology[], replica?: number): SharedArrayBuffer[] {
  const seen = new Set<SharedArrayBuffer>();
  for (const t of topologies) {
    if (replica !== undefined && t.coords.replica !== replica) continue;
    for (const g of Object.values(t.groups)) seen.add(g.barrier);
  }
  return [...seen];
}
