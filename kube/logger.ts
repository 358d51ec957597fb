/** JSON logs (pino). Every reconcile logs through a child carrying controller and key. */
import { pino, type Logger } from 'pino';

export function createLogger(
  level = process.env.LOG_LEVEL ?? 'info',
  destination?: NodeJS.WritableStream,
): Logger {
  return pino(
    { level, base: { component: 'pcloud-operator' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

export type { Logger };
