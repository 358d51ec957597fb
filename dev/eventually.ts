// Polling for tests against real control planes: controllers converge, they do not answer.

export interface EventuallyOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/**
 * Calls fn until it returns something other than undefined or false, and returns that.
 * Errors thrown by fn count as "not yet"; the last one is in the timeout message.
 */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  { timeoutMs = 60_000, intervalMs = 250 }: EventuallyOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * The opposite of eventually (Gomega's Consistently): fn must hold at every poll for
 * forMs. For "nothing happens" claims: it samples the whole window instead of sleeping
 * and looking once. Throws, naming what, at the first poll where fn does not hold.
 */
export async function consistently(
  what: string,
  fn: () => Promise<boolean>,
  { forMs, intervalMs = 250 }: { forMs: number; intervalMs?: number },
): Promise<number> {
  const end = Date.now() + forMs;
  let polls = 0;
  for (;;) {
    if (!(await fn())) throw new Error(`${what} stopped holding after ${polls} polls`);
    polls++;
    if (Date.now() >= end) return polls;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
