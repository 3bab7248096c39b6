#!/usr/bin/env node
// A program whose progress lives only in memory, to show that a checkpoint keeps it.
// It holds MB megabytes of state, filled deterministically, and prints one line per tick:
//   "<i> <checksum>"   i = 1, 2, ... COUNT; checksum = the sum of all the state's 32-bit words
// after adding i to one of them, so checksum(i) = checksum(0) + i(i+1)/2 (mod 2^32). A restart
// from scratch would print 1 again; lost or damaged memory would break the formula.
// Usage: stateful-counter.mjs [COUNT=200] [TICK_MS=50] [MB=100] [EXIT_CODE=7]
const [count, tickMs, megabytes, exitCode] = [200, 50, 100, 7].map((fallback, index) => {
  const value = process.argv[2 + index];
  return value === undefined ? fallback : Number(value);
});

const words = new Uint32Array((megabytes * 1024 * 1024) / 4);
for (let j = 0; j < words.length; j++) words[j] = Math.imul(j, 2654435761) >>> 0;

function checksum() {
  let sum = 0;
  for (let j = 0; j < words.length; j++) sum = (sum + words[j]) >>> 0;
  return sum;
}

let i = 0;
function tick() {
  i += 1;
  words[(i * 7919) % words.length] += i;
  process.stdout.write(`${i} ${checksum()}\n`);
  if (i >= count) process.exit(exitCode);
  setTimeout(tick, tickMs);
}
tick();
