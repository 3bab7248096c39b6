/**
 * The CPU a checkpoint was made on. A program's libraries choose their code by the CPU they
 * start on (glibc's string functions, OpenBLAS kernels, NumPy: AVX2, AVX-512...), and a restored
 * program goes on with that choice: restored on a CPU without those instructions it dies later
 * of SIGILL (criu checks only the FPU by default). So the daemon records the node's CPU with the
 * images (CPU_FEATURES_IMAGE: "host NAME", "model NAME", "flags F1 F2 ..."), and a job refuses to
 * resume on a node whose CPU lacks any of the instruction-set features recorded.
 */

export const CPU_FEATURES_IMAGE = 'ckpt-cpu-features';

export interface CpuRecord {
  host: string;
  model: string;
  flags: string[];
}

/**
 * x86 flags that are instructions a program may use (the rest of /proc/cpuinfo's flags describe
 * the machine: a hypervisor, timers, bugs, which must not keep a program from another node).
 */
const X86_INSTRUCTIONS = new RegExp(
  '^(mmx|mmxext|sse|sse2|pni|ssse3|sse4_1|sse4_2|sse4a|avx.*|fma|fma4|f16c|bmi1|bmi2|adx|aes|vaes|pclmulqdq|vpclmulqdq|gfni|sha_ni|' +
    'popcnt|abm|movbe|rdrand|rdseed|xop|tbm|amx.*|cx8|cx16|cmov|lahf_lm|clflushopt|clwb|clzero|rdpid|movdiri|movdir64b|serialize|' +
    'erms|fsrm|xsave|xsavec|xsaveopt|xsaves|fxsr|3dnow.*|pku|waitpkg|cldemote|3dnowprefetch|sm3|sm4|sha512|ptwrite|wbnoinvd)$',
);

/** This node's CPU from /proc/cpuinfo's text (its first processor: the node's CPUs are alike). */
export function cpuOf(cpuinfo: string, host: string): CpuRecord {
  const field = (name: RegExp): string | undefined => cpuinfo.split('\n').find((line) => name.test(line))?.replace(/^[^:]*:\s*/, '').trim();
  // x86 says "flags"; arm64 says "Features", every one of them an instruction set extension.
  const x86 = field(/^flags\s*:/);
  const flags = (x86 ?? field(/^Features\s*:/) ?? '').split(/\s+/).filter(Boolean);
  return { host, model: field(/^(model name|CPU part)\s*:/) ?? 'unknown', flags: x86 === undefined ? flags : flags.filter((flag) => X86_INSTRUCTIONS.test(flag)) };
}

export function formatCpuRecord(cpu: CpuRecord): string {
  return `host ${cpu.host}\nmodel ${cpu.model}\nflags ${cpu.flags.join(' ')}\n`;
}

export function parseCpuRecord(text: string): CpuRecord | undefined {
  const value = (key: string): string | undefined => new RegExp(`^${key} (.*)$`, 'm').exec(text)?.[1];
  const flags = value('flags');
  if (flags === undefined) return undefined;
  return { host: value('host') ?? 'unknown', model: value('model') ?? 'unknown', flags: flags.split(' ').filter(Boolean) };
}

/** The recorded features that HERE lacks. */
export function missingFeatures(recorded: CpuRecord, here: CpuRecord): string[] {
  const have = new Set(here.flags);
  return recorded.flags.filter((flag) => !have.has(flag));
}

/** The one-line refusal: what is missing, and which nodes to ask the scheduler for. */
export function cpuRefusal(recorded: CpuRecord, here: CpuRecord, missing: string[]): string {
  return (
    `cannot resume on ${here.host}: its CPU (${here.model}) lacks ${missing.join(' ')}, which the checkpointed program may use ` +
    `(checkpointed on ${recorded.host}, ${recorded.model}); restored here it would die of an illegal instruction. Submit the job to ` +
    `nodes whose CPU has them: OAR: oarsub -p with your cluster's CPU property (e.g. -p "host='${recorded.host}'"); ` +
    `Slurm: sbatch --constraint=FEATURE (or --nodelist=${recorded.host})`
  );
}
