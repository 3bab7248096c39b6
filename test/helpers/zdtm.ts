/**
 * CRIU's own test suite (zdtm) as ckpt-run programs, for test/e2e/zdtm.e2e.test.ts: the tests
 * built by test/e2e/zdtm/build.sh, what their .desc files ask for, and how a batch of them ends.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ZdtmTest {
  name: string;
  /** The command line as zdtm's Makefile starts it, from the test's own folder. */
  command: string;
}

/** The options ckpt-daemon gives criu (src/engine/criu/criu.ts): a test needing others cannot run under ckpt-run. */
export const CKPT_RUN_CRIU_OPTIONS = ['--tcp-established', '--file-locks', '--link-remap'];

/** What a test's .desc file says (a Python dict literal: only quoted strings are read). */
export interface ZdtmDesc {
  flags: string[];
  flavor: string[];
  opts: string[];
  ropts: string[];
  dopts: string[];
  feature: string[];
  arch: string[];
}

export function parseDesc(text: string): ZdtmDesc {
  const field = (key: string): string[] => {
    const match = new RegExp(`'${key}'\\s*:\\s*'([^']*)'`).exec(text);
    return match ? match[1].split(/\s+/).filter(Boolean) : [];
  };
  return { flags: field('flags'), flavor: field('flavor'), opts: field('opts'), ropts: field('ropts'), dopts: field('dopts'), feature: field('feature'), arch: field('arch') };
}

export function readDesc(staticDir: string, name: string): ZdtmDesc {
  const path = join(staticDir, `${name}.desc`);
  return parseDesc(existsSync(path) ? readFileSync(path, 'utf8') : '');
}

/**
 * Why ckpt-run cannot run this test (as root, or as an ordinary user), or undefined. zdtm's own
 * meanings: flavor h = the host's namespaces (ns/uns: the test's own, which ckpt-run never
 * makes); crfail = zdtm expects the C/R to fail; noauto = not for automatic runs; suid = the
 * test needs root; nolazy = does not hold with lazy restores.
 */
export interface ZdtmMode {
  /** The job runs as an ordinary user. */
  asUser: boolean;
  /** Restores fault the pages in on first touch (ckpt-daemon where userfaultfd works). */
  lazy: boolean;
}

export function skipReason(desc: ZdtmDesc, { asUser, lazy }: ZdtmMode, hasFeature: (feature: string) => boolean): string | undefined {
  if (desc.flavor.length && !desc.flavor.includes('h')) return `runs only in namespaces of its own (flavor ${desc.flavor.join(' ')})`;
  if (desc.flags.includes('crfail')) return 'zdtm expects its checkpoint or restore to fail (crfail)';
  if (desc.flags.includes('noauto')) return 'not for automatic runs (noauto)';
  if (desc.arch.length && !desc.arch.includes('x86_64')) return `only on ${desc.arch.join(' ')}`;
  const options = [...desc.opts, ...desc.ropts, ...desc.dopts].filter((option) => option.startsWith('--') && !CKPT_RUN_CRIU_OPTIONS.includes(option));
  if (options.length) return `needs criu options ckpt-run does not give (${options.join(' ')})`;
  const missing = desc.feature.filter((feature) => !hasFeature(feature));
  if (missing.length) return `criu feature missing here (${missing.join(' ')})`;
  if (asUser && desc.flags.includes('suid')) return 'needs root (suid)';
  // A lazy restore copies each page in on its first fault: pages a parent and child shared
  // copy-on-write come back as two copies (same contents, more memory), which these tests check.
  if (lazy && desc.flags.includes('nolazy')) return 'checks that copy-on-write pages stay shared, which a lazy restore does not keep (nolazy)';
  return undefined;
}

/** `criu check --feature F`, once per feature. */
export function featureChecker(criu: string): (feature: string) => boolean {
  const known = new Map<string, boolean>();
  return (feature) => {
    if (!known.has(feature)) {
      let ok = true;
      try {
        execFileSync(criu, ['check', '--feature', feature], { stdio: 'pipe', timeout: 30_000 });
      } catch {
        ok = false;
      }
      known.set(feature, ok);
    }
    return known.get(feature) as boolean;
  };
}

/** A test's end in one mode: PASS, or FAIL with zdtm's last words or the C/R failure. */
export interface ZdtmResult {
  pass: boolean;
  detail: string;
}

/** The batch program's verdict lines (test/e2e/zdtm/batch.sh): "zdtm NAME PASS" / "zdtm NAME FAIL why". */
export function parseVerdicts(output: string): Map<string, ZdtmResult> {
  const results = new Map<string, ZdtmResult>();
  for (const match of output.matchAll(/^zdtm (\S+) (PASS|FAIL)(?: (.*))?$/gm)) {
    results.set(match[1], { pass: match[2] === 'PASS', detail: (match[3] ?? '').trim() });
  }
  return results;
}

/** One checkpoint/restore of a batch: the tests' verdicts, or why the C/R itself failed. */
export type BatchOutcome = { verdicts: Map<string, ZdtmResult> } | { failure: string };

/**
 * Runs TESTS as one batch; when the checkpoint or restore itself fails, halves it until each
 * failing test is alone (its own failure is its result), so that one test criu refuses does
 * not hide the others' results.
 */
export async function runBisected(tests: ZdtmTest[], run: (batch: ZdtmTest[]) => Promise<BatchOutcome>): Promise<Map<string, ZdtmResult>> {
  const outcome = await run(tests);
  if ('verdicts' in outcome) {
    const results = new Map<string, ZdtmResult>();
    for (const test of tests) results.set(test.name, outcome.verdicts.get(test.name) ?? { pass: false, detail: 'no verdict line' });
    return results;
  }
  if (tests.length === 1) return new Map([[tests[0].name, { pass: false, detail: outcome.failure }]]);
  const half = Math.ceil(tests.length / 2);
  const first = await runBisected(tests.slice(0, half), run);
  const second = await runBisected(tests.slice(half), run);
  return new Map([...first, ...second]);
}
