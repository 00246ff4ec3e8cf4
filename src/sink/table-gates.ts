/**
 * Writes and truncates of a table within one sink process (see Applier.truncate()).
 * Per table: writes share it, a truncate has it alone (it waits for the writes in
 * flight, and holds new ones back until it is done). A write takes all of its batch's tables at once
 * or none, so two truncates of different tables never wait on each other through writes.
 */
export class TableGates {
  private readonly gates = new Map<string, { writes: number; truncate?: Promise<void>; idle?: () => void }>();

  private gate(table: string) {
    let g = this.gates.get(table);
    if (!g) this.gates.set(table, (g = { writes: 0 }));
    return g;
  }

  async write(tables: Set<string>): Promise<() => void> {
    for (;;) {
      const busy = [...tables].map((t) => this.gates.get(t)?.truncate).find((p) => p !== undefined);
      if (!busy) break;
      await busy;
    }
    const held = [...tables].map((t) => this.gate(t));
    for (const g of held) g.writes++;
    return () => {
      for (const g of held) if (--g.writes === 0) g.idle?.();
    };
  }

  async truncate(table: string): Promise<() => void> {
    const g = this.gate(table);
    while (g.truncate) await g.truncate;
    let done!: () => void;
    g.truncate = new Promise<void>((r) => (done = r));
    while (g.writes > 0) await new Promise<void>((r) => (g.idle = r));
    g.idle = undefined;
    return () => {
      g.truncate = undefined;
      done();
    };
  }
}
