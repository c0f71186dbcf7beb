/**
 * Live migration (issue 9): pre-copy over a dirty tracker between two shadow86
 * instances, through `tcp:HOST:PORT` or `file:PATH`.
 *
 *   // destination
 *   const { machine } = await receiveMigration("tcp:127.0.0.1:4444", { module, onSerial });
 *   const result = machine.run();
 *   // source
 *   const { summary, result } = await runMigrationSource(machine, { uri: "tcp:127.0.0.1:4444", after: 5_000_000n });
 *   // summary.status === "completed": the guest now runs on the destination; otherwise `result` is its run here
 */
export { runMigrationSource, type MigrateOptions, type MigrationSummary, type RoundReport, type SourceOutcome } from "./source.js";
export { receiveMigration, type ReceiveOptions, type DestinationSummary, type Received } from "./destination.js";
export { createDirtyTracker, PageHashTracker, DirtyLogTracker, ramRanges, type DirtyTracker, type TrackerKind } from "./dirty.js";
export { parseMigrationUri, openIncoming, openOutgoing } from "./transport.js";
export { StreamParser, SectionType, MIGRATION_MAGIC, MIGRATION_VERSION } from "./stream.js";
export { PageHasher, ramDigest } from "./pagehash.js";
export { MigrationError } from "../errors.js";
