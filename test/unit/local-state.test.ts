/** The node-local state's record (protocol/local-state.ts) and the CPU record (protocol/cpu-features.ts): pure parts. */
import { describe, expect, it } from 'vitest';
import { cpuOf, cpuRefusal, formatCpuRecord, missingFeatures, parseCpuRecord } from '../../src/protocol/cpu-features.js';
import { decodeAddress, isNodeAddress, nodeBoundSockets } from '../../src/proc/tcp-sockets.js';
import { carriedBytes, describeCarried, describeStays, NODE_LOCAL_FOLDERS, nodeLocalEntries, parseLocalState, tmpfsTmpdir, travelledWith } from '../../src/protocol/local-state.js';

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
