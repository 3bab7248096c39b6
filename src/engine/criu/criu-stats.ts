/**
 * How long criu kept the tree frozen, from the stats-dump image it writes beside the images:
 * two magic numbers, the entry's length, then a StatsEntry (protobuf) whose field 1 is a
 * DumpStatsEntry with freezing_time (1) and frozen_time (2), both in microseconds (criu's
 * images/stats.proto). Read by hand: three varint fields do not warrant a protobuf library.
 */
const HEADER_BYTES = 8;

/** Reads a varint at AT; undefined past the end. */
function varint(bytes: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0, i = at; i < bytes.length && shift < 64; shift += 7, i += 1) {
    value += (bytes[i] & 0x7f) * 2 ** shift;
    if ((bytes[i] & 0x80) === 0) return { value, next: i + 1 };
  }
  return undefined;
}

/** The fields of one protobuf message (varints and length-delimited ones), by field number. */
function fields(bytes: Buffer): Map<number, number | Buffer> {
  const found = new Map<number, number | Buffer>();
  for (let at = 0; at < bytes.length; ) {
    const key = varint(bytes, at);
    if (!key) break;
    const [field, wire] = [Math.floor(key.value / 8), key.value % 8];
    if (wire === 0) {
      const item = varint(bytes, key.next);
      if (!item) break;
      found.set(field, item.value);
      at = item.next;
    } else if (wire === 2) {
      const length = varint(bytes, key.next);
      if (!length) break;
      found.set(field, bytes.subarray(length.next, length.next + length.value));
      at = length.next + length.value;
    } else {
      break; // criu's stats have no other kind: stop rather than guess
    }
  }
  return found;
}

/** The frozen time (ms) that a stats-dump image tells, or undefined when it tells none. */
export function frozenMsOf(image: Buffer): number | undefined {
  if (image.length < HEADER_BYTES + 4) return undefined;
  const length = image.readUInt32LE(HEADER_BYTES);
  const dump = fields(image.subarray(HEADER_BYTES + 4, HEADER_BYTES + 4 + length)).get(1);
  if (!Buffer.isBuffer(dump)) return undefined;
  const frozenUs = fields(dump).get(2);
  return typeof frozenUs === 'number' ? frozenUs / 1000 : undefined;
}
