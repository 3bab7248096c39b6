/**
 * The layer rule of docs/ARCHITECTURE.md, checked on every import of src/: a module imports its
 * own folder and folders of lower layers only. The layers are read from the document's
 * `layers` block, so the rule is written down once. bench/ stands above every layer of src/ (it
 * drives the real programs) and imports nothing of the tests; src/ imports neither. Imports are
 * read by TypeScript's own pre-processor (either quote, `export … from`, `import()`, `require`),
 * not by a pattern.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SRC = join(ROOT, 'src');

/** Folder → rank (0 the lowest), from the ```layers block: one line a layer, the highest first. */
function layersOf(markdown: string): Map<string, number> {
  const block = /^```layers\n([\s\S]*?)^```$/m.exec(markdown)?.[1];
  if (!block) throw new Error('docs/ARCHITECTURE.md has no ```layers block');
  const lines = block.split('\n').map((line) => line.trim()).filter(Boolean);
  return new Map(lines.flatMap((line, index) => line.split(/\s+/).map((folder) => [folder, lines.length - 1 - index] as [string, number])));
}

/** Every relative import (static, dynamic, re-export, require) of a source file. */
function importsOf(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((file) => file.fileName).filter((name) => name.startsWith('.'));
}

/** The imports of FILES (path → source, under src/) that go against LAYERS, one line each. */
function violations(layers: Map<string, number>, files: Map<string, string>): string[] {
  const found: string[] = [];
  for (const [file, source] of files) {
    const from = file.split('/')[0];
    for (const target of importsOf(source)) {
      const to = relative(SRC, resolve(SRC, dirname(file), target)).split('/')[0];
      if (to === '..') {
        found.push(`${file} → ${target}: leaves src/`);
        continue;
      }
      if (to === from) continue;
      const [rankFrom, rankTo] = [layers.get(from), layers.get(to)];
      if (rankFrom === undefined || rankTo === undefined) found.push(`${file} → ${target}: ${rankFrom === undefined ? from : to}/ is in no layer`);
      else if (rankTo >= rankFrom) found.push(`${file} (${from}) imports ${target} (${to}), which is not below it`);
    }
  }
  return found;
}

/** The .ts files under DIR: path relative to FROM → source. */
function sourcesUnder(dir: string, from = SRC): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(from, path), readFileSync(path, 'utf8'));
  }
  return files;
}

/**
 * The imports of bench's FILES (path → source, relative to the project root) that leave bench/
 * and src/: the bench measures the product, never the tests' helpers.
 */
function benchViolations(files: Map<string, string>): string[] {
  return [...files].flatMap(([file, source]) =>
    importsOf(source)
      .map((target) => ({ target, top: relative(ROOT, resolve(ROOT, dirname(file), target)).split('/')[0] }))
      .filter(({ top }) => top !== 'bench' && top !== 'src')
      .map(({ target, top }) => `${file} imports ${target} (${top}/): bench/ may import src/ and bench/ only`),
  );
}

const LAYERS = layersOf(readFileSync(join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8'));

describe('layers', () => {
  it('every folder of src/ has a layer, and no import points up or sideways', () => {
    const folders = readdirSync(SRC, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
    expect(folders.filter((folder) => !LAYERS.has(folder))).toEqual([]);
    expect(violations(LAYERS, sourcesUnder(SRC))).toEqual([]);
  });

  it('bench/ imports only src/ and bench/ (and src/, by the rule above, nothing outside itself)', () => {
    expect(benchViolations(sourcesUnder(join(ROOT, 'bench'), ROOT))).toEqual([]);
  });

  it('test/unit starts no process (those tests live in test/integration)', () => {
    const unit = join(ROOT, 'test/unit');
    const starters = /'node:child_process'|'execa'|\b(?:startTree|startTestDaemon|runCkpt|runSimulate|RealDaemon|RestartEngine)\b/;
    // This file names them, to look for them.
    const others = readdirSync(unit).filter((name) => name !== 'layers.test.ts');
    const spawning = others.filter((name) => starters.test(readFileSync(join(unit, name), 'utf8').replace(/^\s*(?:\/\/|\*).*$/gm, '')));
    expect(spawning).toEqual([]);
  });

  it('the check itself catches an upward, a sideways, a dynamic, a double-quoted, a re-exported and a required import, a folder with no layer, a way out of src/, and a bench import of the tests', () => {
    const files = new Map([
      ['base/a.ts', "import { ExitCode } from '../cli/x.js';"],
      ['engine/b.ts', "import type { X } from '../scheduler/y.js';\nconst z = await import('../launcher/z.js');"],
      ['proc/c.ts', "import { y } from './y.js';\nimport '../state/side-effect.js';"],
      ['nowhere/d.ts', "import { y } from '../base/y.js';"],
      ['state/e.ts', 'import { x } from "../daemon/x.js";\nexport { y } from "../launcher/y.js";'],
      ['log/f.ts', "const { z } = require('../../test/helpers/z.js');"],
    ]);
    expect(violations(LAYERS, files)).toEqual([
      'base/a.ts (base) imports ../cli/x.js (cli), which is not below it',
      'engine/b.ts (engine) imports ../scheduler/y.js (scheduler), which is not below it',
      'engine/b.ts (engine) imports ../launcher/z.js (launcher), which is not below it',
      'proc/c.ts (proc) imports ../state/side-effect.js (state), which is not below it',
      'nowhere/d.ts → ../base/y.js: nowhere/ is in no layer',
      'state/e.ts (state) imports ../daemon/x.js (daemon), which is not below it',
      'state/e.ts (state) imports ../launcher/y.js (launcher), which is not below it',
      'log/f.ts → ../../test/helpers/z.js: leaves src/',
    ]);
    expect(benchViolations(new Map([['bench/figures/g.ts', 'import { h } from "../../test/helpers/h.js";\nimport { i } from "../../src/proc/processes.js";']]))).toEqual([
      'bench/figures/g.ts imports ../../test/helpers/h.js (test/): bench/ may import src/ and bench/ only',
    ]);
  });
});
