/** The audit trail: record (recorder.ts), store (store.ts), chain and verification (chain.ts), keys (keys.ts). */
export { audit, Auditor, recordDenied, withPrincipal, setProcessActor, requestPrincipal, maskDetails, hashOf, SYSTEM_ACTOR, type AuditAction, type Principal } from './recorder.js';
export { AuditStore, type ListFilter } from './store.js';
export { verifyChain, canonicalJson, canonicalEntry, entryHash, GENESIS, type AuditEntry, type Checkpoint, type VerifyResult } from './chain.js';
export { loadAuditKeys, generateAuditKeys } from './keys.js';
