/**
 * What one table's records of a batch leave for a target to write, the same for every sink: the
 * last truncate (records before it are void), then the last record of each key, in the order of
 * the keys' last occurrence. `deleteFirst`: an upsert that follows a delete of its key in the batch
 * (the target deletes the row first, so no column of the deleted row survives the upsert).
 */
export function collapseByKey<P extends { nkey: string; rec: { op: string } }>(records: P[]): { truncate: boolean; last: Iterable<{ p: P; deleteFirst: boolean }> } {
  let lastTruncate = -1;
  for (let i = 0; i < records.length; i++) if (records[i]!.rec.op === 'truncate') lastTruncate = i;
  const list = lastTruncate >= 0 ? records.slice(lastTruncate + 1) : records;
  // Map order = order of last occurrence: a key seen again is moved to the end.
  const last = new Map<string, { p: P; deleteFirst: boolean }>();
  for (const p of list) {
    const prev = last.get(p.nkey);
    const deleteFirst = p.rec.op === 'upsert' && !!prev && (prev.p.rec.op === 'delete' || prev.deleteFirst);
    last.delete(p.nkey);
    last.set(p.nkey, { p, deleteFirst });
  }
  return { truncate: lastTruncate >= 0, last: last.values() };
}
