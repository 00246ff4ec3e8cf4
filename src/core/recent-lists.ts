/**
 * A small most-recent-first cache keyed by a list of strings, matched element by element: for
 * answers asked for per record about a list that is nearly always one of a few (a table's column
 * names, a row's key order), without building a string key each time. Property names and
 * metadata names are interned, so a match costs a pointer comparison per element.
 */
export class RecentLists<T> {
  private readonly entries: { list: string[]; value: T }[] = [];

  constructor(private readonly max: number) {}

  get(list: readonly string[]): T | undefined {
    search: for (let j = 0; j < this.entries.length; j++) {
      const e = this.entries[j]!;
      if (e.list.length !== list.length) continue;
      for (let i = 0; i < list.length; i++) if (e.list[i] !== list[i]) continue search;
      return e.value;
    }
    return undefined;
  }

  /** Remember `value` for (a copy of) `list`, dropping the oldest entry beyond `max`. */
  set(list: readonly string[], value: T): void {
    if (this.entries.length >= this.max) this.entries.pop();
    this.entries.unshift({ list: [...list], value });
  }
}
