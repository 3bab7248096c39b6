/** The reason a failed CRIU run gives the job, from log lines seen on these machines. */
import { describe, expect, it } from 'vitest';
import { busyPid, busyPty, criuFailure, threadIdTaken } from '../../src/engine/criu/criu-log.js';

const NOISE = '(00.025554) Error (criu/util.c:1533): rlimit: Can\'t setup RLIMIT_NOFILE for self: Operation not permitted';

describe('criuFailure', () => {
  it('takes the first real error, not the summary or the noise every run logs', () => {
    const log = [
      '(00.000000) CRIU run id = 3ec38d49',
      NOISE,
      '(00.028834)   1165: Error (criu/files-reg.c:2175): File tmp/exp/f2/data.txt has bad size 19 (expect 14)',
      '(00.028837)   1165: Error (criu/files.c:1221): Unable to open fd=3 id=0x6',
      '(00.028869) Error (criu/cr-restore.c:2320): Restoring FAILED.',
    ].join('\n');
    const failure = criuFailure(log, 'fallback');
    expect(failure.reason).toBe('File tmp/exp/f2/data.txt has bad size 19 (expect 14)');
    expect(failure.retryable).toBe(false);
    expect(failure.log.split('\n')).toHaveLength(4);
  });

  it('marks a PID in use as retryable', () => {
    const log = `${NOISE}\n(00.051938) Error (criu/cr-restore.c:1230): Can't fork for 13039: File exists\n(00.051959) Error (criu/cr-restore.c:2320): Restoring FAILED.`;
    const failure = criuFailure(log, 'fallback');
    expect(failure).toMatchObject({ reason: "Can't fork for 13039: File exists", retryable: true });
    expect(busyPid(failure.reason)).toBe(13039);
    expect(busyPid('File x has bad size 19 (expect 14)')).toBeUndefined();
  });

  it('marks a thread ID in use as retryable, and says what -17 means (criu 4.2.1 names no thread)', () => {
    // Seen on restore with --pid-namespace off once a job forked right after the tree's PID was taken.
    const log = `${NOISE}\n(00.079963) pie: 20069: Error (criu/pie/restorer.c:2185): Unable to create a thread: -17\n(00.080302) Error (criu/cr-restore.c:2331): Restoring FAILED.`;
    const failure = criuFailure(log, 'fallback');
    expect(failure).toMatchObject({ reason: 'Unable to create a thread: -17 (a thread ID of the program is taken on this node)', retryable: true });
    expect(threadIdTaken(failure.reason)).toBe(true);
    expect(busyPid(failure.reason)).toBeUndefined();
    // Another errno is not an ID in use.
    expect(criuFailure('(00.07) pie: 1: Error (criu/pie/restorer.c:2185): Unable to create a thread: -12', 'fallback').retryable).toBe(false);
    expect(threadIdTaken('Unable to create a thread: -12')).toBe(false);
  });

  it('marks a pseudo-terminal number in use as retryable, and says why a restore needs that number', () => {
    // Seen in CI: an Open MPI job's restore while another process held /dev/pts/0.
    const log = `${NOISE}\n(01.589) 2044: Error (criu/tty.c:964): tty: Unable to open dev/ptmx with specified index 0\n(01.590) Error (criu/cr-restore.c:2320): Restoring FAILED.`;
    const failure = criuFailure(log, 'fallback');
    expect(failure.retryable).toBe(true);
    expect(failure.reason).toMatch(/^tty: Unable to open dev\/ptmx with specified index 0 \(the program holds a pseudo-terminal \(Open MPI .*same number, taken on this node\)$/);
    expect(busyPty(failure.reason)).toBe(0);
    expect(busyPty('tty: Unable to open dev/ptmx with specified index 12')).toBe(12);
    expect(busyPty("Can't fork for 13039: File exists")).toBeUndefined();
  });

  it("reports the pre-resume check's refusal, not criu's consequences of it", () => {
    const log = [
      '(00.057976) Running pre-resume scripts',
      'Error (ckpt-daemon pre-resume check): restored process 19916 runs as uid 0 0 0 0, not as uid 1001; the restored tree is killed',
      '(00.066928) Error (criu/util.c:656): exited, status=1',
      '(00.066959) Error (criu/cr-restore.c:2267): Pre-resume script ret code -1',
      '(00.066974) Error (criu/cr-restore.c:1916): Unable to detach 19916: No such process',
    ].join('\n');
    expect(criuFailure(log, 'fallback').reason).toBe('restored process 19916 runs as uid 0 0 0 0, not as uid 1001; the restored tree is killed');
  });

  it('adds what to do where criu does not say it: a tree in a session begun outside the PID namespace (CI, containers)', () => {
    const log = `${NOISE}\n(00.039694) Error (criu/cr-dump.c:1664): A session leader of 87(87) is outside of its pid namespace\n(00.055325) Error (criu/cr-dump.c:2111): Dumping FAILED.`;
    expect(criuFailure(log, 'fallback')).toMatchObject({
      reason: 'A session leader of 87(87) is outside of its pid namespace (the program is in a session begun outside this PID namespace: start it in a session of its own (setsid), as ckpt-run does)',
      retryable: false,
    });
  });

  it('a tree killed mid-dump: the process and the signal, not the raw signal data before them', () => {
    // What criu's SIGCHLD handler logs (compel/src/lib/infect.c, criu/parasite-syscall.c); seen when a simulated walltime killed a dumped job.
    const log = `${NOISE}\n(00.512345) Error (compel/src/lib/infect.c:1293): si_code=2 si_pid=8323 si_status=9\n(00.512350) Error (compel/src/lib/infect.c:1298): 8323 was killed by 9 unexpectedly: Killed`;
    expect(criuFailure(log, 'fallback').reason).toBe(
      '8323 was killed by 9 unexpectedly: Killed (a process of the tree was killed during the dump: its job ended (walltime) or someone killed it)',
    );
  });

  it("a helper command's status is not the cause: what criu ran it for is", () => {
    // Seen with criu's default network lock on a node without the iptables command.
    const log = `${NOISE}\n(00.120001) Error (criu/util.c:656): exited, status=127\n(00.120010) Error (criu/netfilter.c:88): Iptables configuration failed\n(00.120020) Error (criu/sk-tcp.c:110): tcp: Failed to lock TCP connection 4c9d`;
    expect(criuFailure(log, 'fallback').reason).toBe('Iptables configuration failed');
  });

  it('falls back when the log has no error (criu stopped before logging)', () => {
    expect(criuFailure(`${NOISE}\n`, 'criu: excessive parameter')).toMatchObject({ reason: 'criu: excessive parameter', retryable: false });
  });
});
