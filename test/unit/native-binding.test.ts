// The contract between sgld.h, the koffi binding and the built CPU library: the header's functions, the names
// src/runtime/native.ts binds and the library's exports are one and the same set, and a failed call reports a
// status and a message through sgld_last_error.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BOUND_FUNCTIONS, COMM_ID_BYTES, NativeDType, type Ptr, Status, loadNativeLibrary, nativeLibraryPath,
} from '../../src/runtime/native.js';
import { NativeHarness } from '../helpers/native-harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const headerPath = join(root, 'native-build', 'include', 'sgld.h');

/** Names of the functions sgld.h declares: every `sgld_name(` outside comments. */
function declaredFunctions(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
  return [...code.matchAll(/\b(sgld_[a-z0-9_]+)\s*\(/g)].map((m) => m[1]!);
}

const declared = declaredFunctions(readFileSync(headerPath, 'utf8'));

t.test('the header parser finds the declarations (and not names mentioned in comments)', async (t) => {
  t.ok(declared.length >= 30, `${declared.length} functions declared`);
  t.ok(declared.includes('sgld_conv3d') && declared.includes('sgld_last_error'), 'known functions are found');
  t.equal(new Set(declared).size, declared.length, 'each function is declared once');
  t.same(declaredFunctions('/* sgld_hidden(x) */ int sgld_shown(void); // sgld_also_hidden(\n'), ['sgld_shown'],
    'comments are skipped');
});

t.test('BOUND_FUNCTIONS lists exactly the functions of sgld.h', async (t) => {
  const bound = new Set(BOUND_FUNCTIONS);
  t.equal(bound.size, BOUND_FUNCTIONS.length, 'no function is bound twice');
  t.same(declared.filter((f) => !bound.has(f)), [], 'no declared function is missing from the binding');
  t.same(BOUND_FUNCTIONS.filter((f) => !declared.includes(f)), [], 'the binding has no function the header lacks');
});

t.test('the CPU library exports every declared function', async (t) => {
  const lib = loadNativeLibrary('cpu');  // binds every prototype: a missing symbol throws here
  t.equal(lib.fns.sgld_backend_name(), 'cpu', 'backend name');
  t.equal(lib.fns.sgld_abi_version(), 1, 'ABI version');
  let symbols: string | null = null;
  try {
    symbols = execFileSync('nm', ['-D', '--defined-only', nativeLibraryPath('cpu')], { encoding: 'utf8' });
  } catch {
    symbols = null;
  }
  if (symbols === null) {
    t.comment('nm is not installed: binding every prototype through koffi above is the export check');
    return;
  }
  const exported = new Set([...symbols.matchAll(/ T (sgld_\w+)$/gm)].map((m) => m[1]!));
  t.same(declared.filter((f) => !exported.has(f)), [], 'nm -D shows every declared function as defined text');
  t.same([...exported].filter((f) => !declared.includes(f)), [], 'no undeclared sgld_ function is exported');
});

t.test('a failed call returns its status and leaves a message in sgld_last_error', async (t) => {
  const h = new NativeHarness({ threads: 1 });
  t.teardown(() => h.close());
  const p = h.alloc(4);
  const status = h.lib.fns.sgld_fill(h.ctx, 42, 4, p, 1);
  t.equal(status, Status.INVALID, 'sgld_fill with dtype 42 is SGLD_ERR_INVALID');
  t.match(h.lib.fns.sgld_last_error(), /sgld_fill.*dtype 42/, 'the message names the op and the bad dtype');
  t.throws(() => h.check(status, 'sgld_fill'), /sgld_fill failed \(status 1\): sgld_fill: unknown dtype 42/,
    'check() turns it into a NativeError carrying the message');
  t.equal(h.lib.fns.sgld_layer_norm(h.ctx, NativeDType.F16, 1, 4, p, p, null, null, 1e-5), Status.UNSUPPORTED,
    'an op given F16 storage on the CPU backend is SGLD_ERR_UNSUPPORTED');
  t.match(h.lib.fns.sgld_last_error(), /sgld_layer_norm/, 'and says which op');
});

// The collectives section: NCCL communicators exist on CUDA only; the CPU library has the same symbols (one
// binding serves both) and refuses each call with a status and a message that sends the reader to the shm backend.
const COMM_FUNCTIONS = ['sgld_comm_version', 'sgld_comm_unique_id', 'sgld_comm_init', 'sgld_comm_destroy',
  'sgld_comm_abort', 'sgld_comm_group_start', 'sgld_comm_group_end', 'sgld_comm_send', 'sgld_comm_recv',
  'sgld_comm_all_gather', 'sgld_comm_broadcast'];

t.test('the collectives section is declared, bound in header order, and its id size agrees', async (t) => {
  t.same(declared.filter((f) => f.startsWith('sgld_comm_')), COMM_FUNCTIONS, 'sgld.h declares the sgld_comm_* functions');
  t.same(BOUND_FUNCTIONS.filter((f) => f.startsWith('sgld_comm_')), COMM_FUNCTIONS, 'native.ts binds them in that order');
  const idBytes = /#define\s+SGLD_COMM_ID_BYTES\s+(\d+)/.exec(readFileSync(headerPath, 'utf8'));
  t.equal(Number(idBytes?.[1]), COMM_ID_BYTES, 'SGLD_COMM_ID_BYTES == COMM_ID_BYTES (128, NCCL_UNIQUE_ID_BYTES)');
});

t.test('the CPU library refuses every communicator call with SGLD_ERR_UNSUPPORTED, naming the shm backend', async (t) => {
  const h = new NativeHarness({ threads: 1 });
  t.teardown(() => h.close());
  const f = h.lib.fns;
  const buf = h.alloc(4);
  const fake = 0x1000n as Ptr;  // never dereferenced: the CPU backend refuses before looking at a communicator
  const version: [number | null] = [null];
  const id = new Uint8Array(COMM_ID_BYTES).fill(7);
  const comm: [Ptr | null] = [null];
  const calls: [string, () => number][] = [
    ['sgld_comm_version', () => f.sgld_comm_version(version)],
    ['sgld_comm_unique_id', () => f.sgld_comm_unique_id(id)],
    ['sgld_comm_init', () => f.sgld_comm_init(h.ctx, id, 2, 0, comm)],
    ['sgld_comm_destroy', () => f.sgld_comm_destroy(fake)],
    ['sgld_comm_abort', () => f.sgld_comm_abort(fake)],
    ['sgld_comm_group_start', () => f.sgld_comm_group_start()],
    ['sgld_comm_group_end', () => f.sgld_comm_group_end()],
    ['sgld_comm_send', () => f.sgld_comm_send(fake, h.ctx, buf, 16, 1)],
    ['sgld_comm_recv', () => f.sgld_comm_recv(fake, h.ctx, buf, 16, 1)],
    ['sgld_comm_all_gather', () => f.sgld_comm_all_gather(fake, h.ctx, buf, buf, 16)],
    ['sgld_comm_broadcast', () => f.sgld_comm_broadcast(fake, h.ctx, buf, buf, 16, 0)],
  ];
  t.same(calls.map(([fn]) => fn), COMM_FUNCTIONS, 'every function is called below');
  for (const [fn, call] of calls) {
    t.equal(call(), Status.UNSUPPORTED, `${fn} is SGLD_ERR_UNSUPPORTED`);
    t.match(f.sgld_last_error(), new RegExp(`^${fn}: the CPU backend has no NCCL communicators; CPU ranks exchange `
      + 'through the shm collectives backend'), `${fn} says why and where to go`);
  }
  t.equal(version[0], 0, 'the version out-parameter is zeroed, not left undefined');
  t.equal(comm[0], null, 'no communicator comes back');
  t.ok(id.every((b) => b === 7), 'the id buffer is left alone');
  t.equal(f.sgld_comm_destroy(null), Status.OK, 'destroying NULL is a no-op');
  t.equal(f.sgld_comm_abort(null), Status.OK, 'aborting NULL is a no-op');
});
