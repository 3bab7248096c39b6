/**
 * The size rule of docs/ARCHITECTURE.md, checked on every file of src/: no source file over
 * MAX_FILE_LINES lines, no function (declaration, method, arrow, accessor, constructor) over
 * MAX_FUNCTION_LINES. Functions are found by TypeScript's own parser, not by a pattern, so a
 * handler in an object literal or a callback counts as much as a declaration.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SRC = join(ROOT, 'src');
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

/** A function's name for the report: its own, its property's or variable's, else where it starts. */
function nameOf(node: ts.FunctionLikeDeclaration, source: ts.SourceFile): string {
  const parent = node.parent;
  const named = node.name ?? (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent) ? parent.name : undefined);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  return named ? named.getText(source) : `(anonymous, line ${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1})`;
}

/** The file FILE (SOURCE) and its functions that are over the limits, one line each. */
export function oversized(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const lines = (position: number): number => source.getLineAndCharacterOfPosition(position).line;
  const found: string[] = [];
  const fileLines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  if (fileLines > MAX_FILE_LINES) found.push(`${file}: ${fileLines} lines (at most ${MAX_FILE_LINES})`);
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const length = lines(node.getEnd()) - lines(node.getStart(source)) + 1;
      if (length > MAX_FUNCTION_LINES) found.push(`${file}: ${nameOf(node as ts.FunctionLikeDeclaration, source)} is ${length} lines (at most ${MAX_FUNCTION_LINES})`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function sourcesUnder(dir: string): Array<[string, string]> {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name))
    .map((path) => [relative(SRC, path), readFileSync(path, 'utf8')]);
}

describe('sizes', () => {
  it(`no file of src/ over ${MAX_FILE_LINES} lines, no function over ${MAX_FUNCTION_LINES}`, () => {
    expect(sourcesUnder(SRC).flatMap(([file, text]) => oversized(file, text))).toEqual([]);
  });

  it('the check itself catches a long file, a long declaration, a long method in an object literal and a long arrow', () => {
    const body = (n: number): string => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
    const text = [
      `function long() {\n${body(79)}\n}`,
      `function short() {\n${body(78)}\n}`,
      `const HANDLERS = {\n  handler() {\n${body(79)}\n  },\n};`,
      `const arrow = () => {\n${body(79)}\n};`,
      `class C {\n  constructor() {\n${body(79)}\n  }\n}`,
    ].join('\n');
    expect(oversized('a/b.ts', text)).toEqual([
      `a/b.ts: ${text.split('\n').length} lines (at most ${MAX_FILE_LINES})`,
      'a/b.ts: long is 81 lines (at most 80)',
      'a/b.ts: handler is 81 lines (at most 80)',
      'a/b.ts: arrow is 81 lines (at most 80)',
      'a/b.ts: constructor is 81 lines (at most 80)',
    ]);
  });
});
