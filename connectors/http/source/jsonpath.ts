/**
 * The small JSONPath subset the HTTP source takes (pure; ./source.test.ts):
 *   $             the document (or the record, in a column path)
 *   .name         a member (letters, digits, _ and $; not starting with a digit)
 *   ['name']      a member of any name ("name" too; \' and \\ escaped)
 *   [n]           the n-th element of an array (0-based; negative counts from the end)
 *   [*]           every element: only as the last step, where it means the array itself
 *                 ($.results[*] is the same as $.results)
 * No filters, slices, unions or recursive descent. A step on a value that does not have it
 * (a member of a non-object, an index out of range) gives `undefined`.
 */

export type Step = { member: string } | { index: number } | { all: true };

export function parsePath(p: string): Step[] {
  if (!p.startsWith('$')) throw new Error(`'${p}' does not start with $`);
  const steps: Step[] = [];
  let i = 1;
  while (i < p.length) {
    const c = p[i]!;
    if (c === '.') {
      const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(p.slice(i + 1));
      if (!m) throw new Error(`'${p}': a name must follow '.' at character ${i + 1}`);
      steps.push({ member: m[0] });
      i += 1 + m[0].length;
    } else if (c === '[') {
      const rest = p.slice(i);
      let m: RegExpExecArray | null;
      if ((m = /^\[\*\]/.exec(rest))) {
        steps.push({ all: true });
        i += m[0].length;
        if (i < p.length) throw new Error(`'${p}': [*] may only be the last step`);
      } else if ((m = /^\[(-?\d+)\]/.exec(rest))) {
        steps.push({ index: Number(m[1]) });
        i += m[0].length;
      } else if ((m = /^\[(['"])((?:\\.|(?!\1).)*)\1\]/.exec(rest))) {
        steps.push({ member: m[2]!.replace(/\\(.)/g, '$1') });
        i += m[0].length;
      } else throw new Error(`'${p}': expected [n], [*] or ['name'] at character ${i + 1}`);
    } else throw new Error(`'${p}': unexpected '${c}' at character ${i + 1} (the subset is $ .name ['name'] [n] [*])`);
  }
  return steps;
}

/** The problem with a path, for the config spec (null: fine). */
export function pathIssue(p: string): string | null {
  try {
    parsePath(p);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

export function evaluate(steps: readonly Step[], doc: unknown): unknown {
  let v: unknown = doc;
  for (const s of steps) {
    if ('all' in s) return Array.isArray(v) ? v : undefined;
    if ('index' in s) {
      if (!Array.isArray(v)) return undefined;
      v = v[s.index < 0 ? v.length + s.index : s.index];
    } else {
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.prototype.hasOwnProperty.call(v, s.member)) return undefined;
      v = (v as Record<string, unknown>)[s.member];
    }
  }
  return v;
}

/** A compiled path: `select(doc)`. */
export function compilePath(p: string): (doc: unknown) => unknown {
  const steps = parsePath(p);
  return (doc) => evaluate(steps, doc);
}
