// Structured logging with pino: JSON lines by default, pino-pretty when asked (synchronous stream, no worker).
import { pino } from 'pino';
import pretty from 'pino-pretty';
import type { NodeConfig } from './config.js';

export function createLogger(config: Pick<NodeConfig, 'id' | 'clusterId' | 'logLevel' | 'logPretty'>): pino.Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: { nodeId: config.id, clusterId: config.clusterId },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (config.logPretty) {
    return pino(options, pretty({ colorize: process.stderr.isTTY, destination: 2, sync: true }));
  }
  return pino(options, pino.destination({ dest: 2, sync: false }));
}
