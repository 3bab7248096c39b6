/** The node-local state's record (protocol/local-state.ts) and the CPU record (protocol/cpu-features.ts): pure parts. */
import { describe, expect, it } from 'vitest';
import { cpuOf, cpuRefusal, formatCpuRecord, missingFeatures, parseCpuRecord } from '../../src/protocol/cpu-features.js';
import { decodeAddress, isNodeAddress, nodeBoundSockets } from '../../src/proc/tcp-sockets.js';
import {
  carriedBytes,
  createdEntries,
  createdSince,
  CREATED_SLACK_MS,
  describeCarried,
  describeLeft,
  describeStays,
  NODE_LOCAL_FOLDERS,
  nodeLocalEntries,
  parseLocalState,
  parseTopEntries,
  tmpfsTmpdir,
  travelledWith,
  withinLimit,
  type TopEntry,
} from '../../src/protocol/local-state.js';

const RECORD = [
  'limit 1000000',
  'carried 8500000 /tmp/ompi.n1.1000',
  'carried 131072 /dev/shm/vader_segment.n1.1000.1',
  'carried 4096 /dev/shm/sem.mp-x',
  'stays owner:0 /tmp/shared-by-root',
  'stays odd-name /tmp/a b',
  'stays over-limit:2000000 /var/tmp/big',
  'stays device /dev/nvidia0',
  'socket TCP 10.0.0.5:5000 (listening)',
  'garbage line',
  '',
].join('\n');

describe('node-local state record', () => {
  const state = parseLocalState(RECORD);

  it('parses what travelled and what stays, leaving other lines out', () => {
    expect(state.limit).toBe(1_000_000);
    expect(state.carried).toEqual([
      { path: '/tmp/ompi.n1.1000', bytes: 8_500_000 },
      { path: '/dev/shm/vader_segment.n1.1000.1', bytes: 131_072 },
      { path: '/dev/shm/sem.mp-x', bytes: 4096 },
    ]);
    expect(state.stays.map((entry) => entry.why)).toEqual(['owner:0', 'odd-name', 'over-limit:2000000', 'device']);
    expect(state.sockets).toEqual(['TCP 10.0.0.5:5000 (listening)']);
    expect(carriedBytes(state)).toBe(8_635_168);
  });

  it('says what travelled, with sizes', () => {
    expect(describeCarried(state)).toBe('/tmp/ompi.n1.1000 (8.5 MB), /dev/shm/vader_segment.n1.1000.1 (0.1 MB), /dev/shm/sem.mp-x (4.1 kB): 8.6 MB');
    expect(describeCarried(parseLocalState('limit 5\n'))).toBeUndefined();
  });

  it('names what cannot travel, why, and what to do', () => {
    const said = describeStays(state) ?? '';
    expect(said).toContain('/tmp/shared-by-root (it belongs to uid 0');
    expect(said).toContain('/tmp/a b (its name has a space)');
    expect(said).toContain("/var/tmp/big (2.0 MB, with the rest over the daemon's bound of 1.0 MB (ckpt-daemon --local-state-limit))");
    expect(said).toContain("/dev/nvidia0 (a device of this node's)");
    expect(said).toContain("a socket bound to this node's own address, TCP 10.0.0.5:5000 (listening)");
    expect(said).toMatch(/only on this node/);
    expect(said.split('\n')).toHaveLength(1);
    expect(describeStays(parseLocalState('carried 1 /tmp/x\n'))).toBeUndefined();
  });

  it("finds the entries a tree's names keep in the node-local folders: each top-level entry once, not a deleted name nor the run folder's", () => {
    const held = [
      '/tmp/ompi.n1.1000/pid.2/hwloc.sm', '/tmp/ompi.n1.1000/jf.0', '/dev/shm/vader_segment.n1.1000.1', '/home/u/data.h5',
      '/dev/shm/sem.gone (deleted)', '/tmp/jobs/run/stdout.log', '/tmp', '/var/tmpx/y', '/scratch/u/a', 'socket:[12]',
    ];
    expect(nodeLocalEntries(held, NODE_LOCAL_FOLDERS, '/tmp/jobs/run/.ckpt-run/r')).toEqual(['/tmp/ompi.n1.1000', '/dev/shm/vader_segment.n1.1000.1']);
    expect(nodeLocalEntries(held, [...NODE_LOCAL_FOLDERS, '/scratch/u'], '/home/u/.ckpt-run/r')).toContain('/scratch/u/a');
  });

  it('takes a TMPDIR as node-local where the mounts put it on a tmpfs (the longest mount point holding it)', () => {
    const mounts = ['/dev/vda / ext4 rw 0 0', 'tmpfs /scratch tmpfs rw 0 0', 'nfs:/home /scratch/shared nfs rw 0 0', ''].join('\n');
    expect(tmpfsTmpdir('/scratch/u/', mounts)).toBe('/scratch/u');
    expect(tmpfsTmpdir('/scratch/shared/u', mounts)).toBeUndefined();
    expect(tmpfsTmpdir('/home/u/tmp', mounts)).toBeUndefined();
    expect(tmpfsTmpdir('/tmp/u', 'tmpfs /tmp tmpfs rw 0 0')).toBeUndefined(); // in /tmp already
    expect(tmpfsTmpdir(undefined, mounts)).toBeUndefined();
    expect(tmpfsTmpdir('relative', mounts)).toBeUndefined();
  });

  it('knows which paths travelled: a carried entry and what is inside it, not a sibling with a longer name', () => {
    expect(travelledWith(state, '/tmp/ompi.n1.1000')).toBe(true);
    expect(travelledWith(state, '/tmp/ompi.n1.1000/pid.2/hwloc.sm')).toBe(true);
    expect(travelledWith(state, '/tmp/ompi.n1.10000/x')).toBe(false);
    expect(travelledWith(state, '/tmp/other')).toBe(false);
  });
});

describe("what the program's user made in the node-local folders since it started (the created tier)", () => {
  const USER = 1000;
  // The program started at 10:00:00 on a fake clock; the entries' ctimes around it.
  const STARTED = Date.parse('2026-12-06T10:00:00Z');
  const since = createdSince(STARTED, USER) as number;
  const at = (offsetMs: number): number => STARTED + offsetMs;
  const entry = (path: string, offsetMs: number, type = 'd', uid = USER): TopEntry => ({ type, uid, ctimeMs: at(offsetMs), path });

  it('travels from a second before the start (coarse file clocks), for a user, never for root, nor without a start', () => {
    expect(since).toBe(STARTED - CREATED_SLACK_MS);
    expect(createdSince(undefined, USER)).toBeUndefined();
    expect(createdSince(STARTED, 0)).toBeUndefined();
  });

  it("takes the user's entries changed since, not older ones, not another user's, not what the tree holds or the run folder's", () => {
    const listing = [
      entry('/tmp/RtmpAb12', 200), // R's session folder, made at its start
      entry('/tmp/scratch.dat', 60_000, 'f'), // written and closed later
      entry('/tmp/just-before', -400), // a tick behind the start: the kernel's coarse clock
      entry('/tmp/yesterday', -86_400_000), // the user's, from an earlier job
      entry('/tmp/at-the-slack', -CREATED_SLACK_MS), // not after it: stays out, as with find -newerct
      entry('/tmp/RtmpOther', 500, 'd', 1001), // another user's, on a shared node
      entry('/tmp/ompi.n1.1000', 300), // held: the held tier's
      entry('/dev/shm/link_remap.7', 400, 'f'), // criu's: the held tier's when held
      entry('/tmp/jobs', 100), // holds the run folder: the next job finds it there, or nowhere
      entry('/dev/shm/link', 100, 'l'),
    ];
    const chosen = createdEntries(listing, { user: USER, since, held: ['/tmp/ompi.n1.1000'], runDir: '/tmp/jobs/run/.ckpt-run/r' });
    expect(chosen.entries).toEqual(['/tmp/RtmpAb12', '/tmp/scratch.dat', '/tmp/just-before', '/dev/shm/link']);
    expect(chosen.stays).toEqual([]);
  });

  it('leaves sockets, fifos, devices and names the record cannot carry, each with a word', () => {
    const listing = [
      entry('/tmp/app.sock', 10, 's'),
      entry('/tmp/pipe', 10, 'p'),
      entry('/dev/shm/dev', 10, 'c'),
      entry('/tmp/door', 10, 'D'),
      entry('/tmp/my results', 10, 'f'),
      entry('/var/tmp/two\nlines', 10, 'f'),
    ];
    const { entries, stays } = createdEntries(listing, { user: USER, since, held: [], runDir: '/home/u/.ckpt-run/r' });
    expect(entries).toEqual([]);
    expect(stays).toEqual([
      { path: '/tmp/app.sock', why: 'socket', created: true },
      { path: '/tmp/pipe', why: 'fifo', created: true },
      { path: '/dev/shm/dev', why: 'device', created: true },
      { path: '/tmp/door', why: 'special', created: true },
      { path: '/tmp/my results', why: 'odd-name', created: true },
      { path: '/var/tmp', why: 'line-break', created: true },
    ]);
  });

  it("reads find's listing, a name with a line break included", () => {
    const text = 'd 1000 1796600000.1234567890 /tmp/RtmpAb12\0f 1001 1796600001.5000000000 /tmp/two\nlines\0garbage\0';
    expect(parseTopEntries(text)).toEqual([
      { type: 'd', uid: 1000, ctimeMs: 1_796_600_000_123.4568, path: '/tmp/RtmpAb12' },
      { type: 'f', uid: 1001, ctimeMs: 1_796_600_001_500, path: '/tmp/two\nlines' },
    ]);
  });

  it('carries the held entries all or none, then the created ones smallest first while the bound has room', () => {
    const held = [{ path: '/tmp/ompi', bytes: 600 }];
    const created = [
      { path: '/tmp/leftover', bytes: 500, created: true as const },
      { path: '/tmp/RtmpAb12', bytes: 100, created: true as const },
      { path: '/tmp/scratch', bytes: 300, created: true as const },
    ];
    expect(withinLimit(held, created, 1000).map((entry) => entry.path)).toEqual(['/tmp/ompi', '/tmp/RtmpAb12', '/tmp/scratch']);
    expect(withinLimit([], created, 1000).map((entry) => entry.path)).toEqual(['/tmp/RtmpAb12', '/tmp/scratch', '/tmp/leftover']);
    expect(withinLimit(held, created, 500)).toEqual([]); // the held ones do not fit: nothing travels
  });

  it('records, says and reports the created entries apart from what the program holds', () => {
    const state = parseLocalState(
      [
        'limit 1000000',
        'carried 8500000 /tmp/ompi.n1.1000',
        'carried-created 4096 /tmp/RtmpAb12',
        'stays-created over-limit:3000000 /var/tmp/big',
        'stays-created socket /tmp/app.sock',
        'stays-created changed /tmp/RtmpOther',
        'stays-created line-break /tmp',
        '',
      ].join('\n'),
    );
    expect(state.carried).toEqual([
      { path: '/tmp/ompi.n1.1000', bytes: 8_500_000 },
      { path: '/tmp/RtmpAb12', bytes: 4096, created: true },
    ]);
    expect(travelledWith(state, '/tmp/RtmpAb12/walk-10')).toBe(true);
    expect(describeCarried(state)).toBe('/tmp/ompi.n1.1000 (8.5 MB), /tmp/RtmpAb12 (4.1 kB, made since the program started): 8.5 MB');
    // Nothing the program holds stays: no "cannot travel", which keeps a job on this node.
    expect(describeStays(state)).toBeUndefined();
    const left = describeLeft(state) ?? '';
    expect(left).toMatch(/^made in this node's own folders since the program started, and not carried with its checkpoint: /);
    expect(left).toContain("/var/tmp/big (3.0 MB, over what the daemon's bound of 1.0 MB leaves (ckpt-daemon --local-state-limit))");
    expect(left).toContain('/tmp/app.sock (a socket: it joins live processes, there is no content to copy)');
    expect(left).toContain("/tmp/RtmpOther (another process (another job's?) changed it while it was copied)");
    expect(left).toContain('/tmp (an entry whose name has a line break)');
    expect(left).toMatch(/the next job needs this node: keep such files in the job's folder on the shared filesystem$/);
    expect(left.split('\n')).toHaveLength(1);
    expect(describeLeft(parseLocalState('carried-created 1 /tmp/x\n'))).toBeUndefined();
  });
});

describe("sockets bound to the node's own address", () => {
  it('decodes /proc/net addresses, IPv4 and IPv6', () => {
    expect(decodeAddress('0100007F:1F90')).toBe('127.0.0.1:8080');
    expect(decodeAddress('0500000A:1388')).toBe('10.0.0.5:5000');
    expect(decodeAddress('00000000000000000000000001000000:0016')).toBe('[::1]:22');
    expect(decodeAddress('00000000000000000000000000000000:0016')).toBe('[::]:22');
    expect(decodeAddress('0000000000000000FFFF00000500000A:1388')).toBe('10.0.0.5:5000');
  });

  it('keeps only sockets bound to an address other than the loopback or a wildcard, TCP listening or connected, UDP bound', () => {
    const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const row = (local: string, state: string, inode: string): string => `   0: ${local} 00000000:0000 ${state} 00000000:00000000 00:00000000 00000000  1000        0 ${inode} 1\n`;
    const bound = nodeBoundSockets({
      tcp: header + row('0500000A:1388', '0A', '11') + row('0100007F:1F90', '0A', '12') + row('00000000:0016', '0A', '13') + row('0500000A:A000', '01', '14') + row('0500000A:A001', '06', '15'),
      udp: header + row('0500000A:0035', '07', '16'),
    });
    expect([...bound]).toEqual([
      ['11', 'TCP 10.0.0.5:5000 (listening)'],
      ['14', 'TCP 10.0.0.5:40960 (connected)'],
      ['16', 'UDP 10.0.0.5:53 (bound)'],
    ]);
    expect(isNodeAddress('127.0.0.1:80')).toBe(false);
    expect(isNodeAddress('192.168.1.2:80')).toBe(true);
  });
});

describe('CPU record', () => {
  const x86 = (flags: string): string => `processor\t: 0\nmodel name\t: Intel Xeon Gold 6130\nflags\t\t: ${flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n`;

  it("keeps only the x86 flags that are instructions (a hypervisor or a timer must not keep a program from a node)", () => {
    const cpu = cpuOf(x86('fpu vme sse sse2 ssse3 avx avx2 avx512f avx512bw hypervisor constant_tsc bmi2 fma sha_ni'), 'n1');
    expect(cpu).toEqual({ host: 'n1', model: 'Intel Xeon Gold 6130', flags: ['sse', 'sse2', 'ssse3', 'avx', 'avx2', 'avx512f', 'avx512bw', 'bmi2', 'fma', 'sha_ni'] });
  });

  it('keeps every arm64 feature', () => {
    expect(cpuOf('processor\t: 0\nFeatures\t: fp asimd aes sve\nCPU part\t: 0xd0c\n', 'a1').flags).toEqual(['fp', 'asimd', 'aes', 'sve']);
  });

  it('round-trips the record and names the missing features with the scheduler properties to ask for', () => {
    const recorded = cpuOf(x86('sse avx2 avx512f avx512bw'), 'dahu-3');
    expect(parseCpuRecord(formatCpuRecord(recorded))).toEqual(recorded);
    expect(parseCpuRecord('host x\n')).toBeUndefined();
    const here = cpuOf(x86('sse avx2 hypervisor'), 'yeti-1');
    const missing = missingFeatures(recorded, here);
    expect(missing).toEqual(['avx512f', 'avx512bw']);
    expect(missingFeatures(here, recorded)).toEqual([]);
    const message = cpuRefusal(recorded, here, missing);
    expect(message).toMatch(/^cannot resume on yeti-1: its CPU \(Intel Xeon Gold 6130\) lacks avx512f avx512bw/);
    expect(message).toContain(`oarsub -p`);
    expect(message).toContain('--constraint');
    expect(message.split('\n')).toHaveLength(1);
  });
});
