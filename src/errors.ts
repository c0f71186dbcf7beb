/**
 * Typed errors that say what went wrong and what to do about it.
 *
 * Every error shadow86 raises on purpose is a `Shadow86Error`. Its `message` is
 * `"<subject>: <what>"` (the subject is usually a file path), and `name` is the
 * subclass name, so the CLI prints `${err.name}: ${err.message}` and gets
 *
 *     ElfError: guest-images/foo.elf: not a multiboot image (no header in the first 8 KiB)
 *
 * without a stack trace. Anything that is not a `Shadow86Error` is a bug in
 * shadow86 and deserves its stack trace.
 */

export class Shadow86Error extends Error {
  /** The file (or other subject) the error is about, or null. */
  readonly subject: string | null;
  /** The description without the subject prefix. */
  readonly what: string;

  constructor(subject: string | null, what: string, options?: { cause?: unknown }) {
    super(subject === null || subject === "" ? what : `${subject}: ${what}`, options);
    this.name = "Shadow86Error";
    this.subject = subject === "" ? null : subject;
    this.what = what;
  }
}

/** A kernel image is malformed or cannot be loaded (ELF or multiboot header problems). */
export class ElfError extends Shadow86Error {
  constructor(subject: string | null, what: string, options?: { cause?: unknown }) {
    super(subject, what, options);
    this.name = "ElfError";
  }
}

/** The machine cannot be set up as asked (RAM too small, info area full, bad device setup...). */
export class BootError extends Shadow86Error {
  constructor(subject: string | null, what: string, options?: { cause?: unknown }) {
    super(subject, what, options);
    this.name = "BootError";
  }
}

/** The guest did something the machine cannot continue from (triple fault, access outside RAM...). */
export class GuestError extends Shadow86Error {
  constructor(subject: string | null, what: string, options?: { cause?: unknown }) {
    super(subject, what, options);
    this.name = "GuestError";
  }
}

/**
 * A live migration failed: the stream is truncated, corrupted, of another
 * version or inconsistent, or the transport failed. The subject is the
 * transport (`tcp:127.0.0.1:4444`, `file:vm.mig`).
 */
export class MigrationError extends Shadow86Error {
  constructor(subject: string | null, what: string, options?: { cause?: unknown }) {
    super(subject, what, options);
    this.name = "MigrationError";
  }
}

/**
 * One line for a user: `"ElfError: path: what"` for a Shadow86Error; for anything
 * else (a bug) the stack when there is one.
 */
export function formatError(err: unknown): string {
  if (err instanceof Shadow86Error) return `${err.name}: ${err.message}`;
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}
