/** The spool's request files, as the clusters' bash daemon (head -1, tail -1) and ckpt-daemon read them. */
import { describe, expect, it } from 'vitest';
import { formatRequest, MalformedRequestError, parseRequest } from '../../src/protocol/spool-request.js';

describe('spool requests', () => {
  it("a resume names DIR on its last line, with or without the job's PID before it", () => {
    expect(formatRequest({ kind: 'resume', jobId: 'j', dir: '/runs/a' })).toBe('/runs/a\n');
    const leased = formatRequest({ kind: 'resume', jobId: 'j', dir: '/runs/a', jobPid: 4242 });
    expect(leased).toBe('4242\n/runs/a\n');
    expect(leased.trimEnd().split('\n').at(-1)).toBe('/runs/a'); // what `tail -1` gives the bash daemon
    expect(parseRequest('resume', 'j', leased)).toEqual({ kind: 'resume', jobId: 'j', dir: '/runs/a', jobPid: 4242 });
    expect(parseRequest('resume', 'j', '/runs/a\n')).toEqual({ kind: 'resume', jobId: 'j', dir: '/runs/a' });
  });

  it('refuses a resume whose first line is not a PID, or with more lines', () => {
    expect(() => parseRequest('resume', 'j', 'me\n/runs/a\n')).toThrow(new MalformedRequestError('PID "me" is not a number'));
    expect(() => parseRequest('resume', 'j', '1\n2\n/runs/a\n')).toThrow(new MalformedRequestError('expected 1 or 2 lines, got 3'));
    expect(() => parseRequest('checkpoint', 'j', '/runs/a\n')).toThrow(new MalformedRequestError('expected 2 lines, got 1'));
  });

  it('a checkpoint is PID then DIR', () => {
    expect(parseRequest('checkpoint', 'j', formatRequest({ kind: 'checkpoint', jobId: 'j', pid: 7, dir: '/runs/a' }))).toEqual({ kind: 'checkpoint', jobId: 'j', pid: 7, dir: '/runs/a' });
  });
});
