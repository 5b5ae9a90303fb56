// Rank numbering, process groups and sequence shards of parallel layouts (no threads needed).
import t from 'tap';
import { RankParallel } from '../../src/parallel/rank-context.js';
import { UlyssesHeadsError, balancedSplit, offsetsOf } from '../../src/parallel/sequence-parallel.js';
import { buildTopologies, coordinatesOf, rankOf, worldSize } from '../../src/parallel/topology.js';
import { Device } from '../../src/runtime/device.js';

t.test('balanced shards: sizes differ by at most one, larger first, and cover the sequence', async (t) => {
  t.same(balancedSplit(45, 4), [12, 11, 11, 11]);
  t.same(balancedSplit(6, 4), [2, 2, 1, 1]);
  t.same(balancedSplit(3, 2), [2, 1]);
  t.same(offsetsOf([12, 11, 11, 11]), [0, 12, 23, 34]);
  for (let total = 0; total < 40; total++) for (let parts = 1; parts <= 8; parts++) {
    const s = balancedSplit(total, parts);
    if (s.reduce((a, b) => a + b, 0) !== total || Math.max(...s) - Math.min(...s) > 1) t.fail(`split ${total}/${parts} = ${s}`);
  }
});

t.test('rank numbering: replica-major, then CFG branch, ring, Ulysses', async (t) => {
  const d = { dp: 2, cfg: 2, ulysses: 2, ring: 2 };
  t.equal(worldSize(d), 16);
  for (let r = 0; r < 16; r++) t.equal(rankOf(coordinatesOf(r, d), d), r, `rank ${r} round-trips`);
  t.same(coordinatesOf(13, d), { rank: 13, replica: 1, branch: 1, ringIndex: 0, ulyssesIndex: 1, spIndex: 1 });
});

t.test('process groups of cfg 2 x ulysses 2 x ring 2 (8 ranks)', async (t) => {
  const tops = buildTopologies({ dp: 1, cfg: 2, ulysses: 2, ring: 2 });
  const g = tops[5]!.groups; // branch 1, ring 0, ulysses 1
  t.same(g.replica.members, [0, 1, 2, 3, 4, 5, 6, 7]);
  t.same(g.cfg.members, [1, 5]);
  t.same(g.sp.members, [4, 5, 6, 7]);
  t.same(g.ulysses.members, [4, 5]);
  t.same(g.ring.members, [5, 7]);
  t.equal(g.ring.rank, 0);
  t.equal(g.ulysses.rank, 1);
  t.equal(tops[1]!.groups.cfg.barrier, g.cfg.barrier, 'members of a group share its buffers');
  t.not(tops[0]!.groups.cfg.barrier, g.cfg.barrier, 'other groups have their own');
});

t.test('a clear error when the Ulysses degree exceeds the attention heads', async (t) => {
  const device = new Device({ backend: 'cpu', threads: 1 });
  t.teardown(() => device.close());
  const rank0 = RankParallel.join(buildTopologies({ dp: 1, cfg: 1, ulysses: 4, ring: 1 })[0]!, device);
  t.throws(() => rank0.sequence!.checkHeads(3), UlyssesHeadsError);
  t.throws(() => rank0.sequence!.checkHeads(3), /--ulysses-degree 4 needs at least 4 attention heads/);
  t.doesNotThrow(() => rank0.sequence!.checkHeads(12));
  t.doesNotThrow(() => rank0.sequence!.checkHeads(5), 'heads need not divide: 5 heads over 4 ranks is 2 + 1 + 1 + 1');
});
