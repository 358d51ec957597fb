/** JSON logs (pino). Every reconcile logs through a child carrying controller and key. */
import { pino, type Logger } from 'pino';

/** level comes from the caller's configuration (`--log-level`, cli/config.ts). */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { component: 'pcloud-operator' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

export type { Logger };
