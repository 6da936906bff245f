/**
 * Structured logging on pino: JSON lines (to a file or stderr) for machines, and an optional
 * one-line human echo on stderr.
 */
import pino from 'pino';
import type { Logger } from './contracts/logger';

export interface LoggerOptions {
  /** Write JSON lines here (appended); default: none. */
  jsonFile?: string;
  /** Echo `message key=value ...` lines on stderr. Default true. */
  console?: boolean;
  level?: 'debug' | 'info' | 'warn' | 'error';
  /** Bound to every record, e.g. { app: 'train' }. */
  bindings?: Record<string, unknown>;
}

function formatFields(fields?: Record<string, unknown>): string {
  if (!fields) return '';
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toPrecision(6) : JSON.stringify(v)}`);
  return parts.length ? ' ' + parts.join(' ') : '';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const file = options.jsonFile ? pino({ level, base: options.bindings ?? {} }, pino.destination({ dest: options.jsonFile, sync: true, mkdir: true, append: true })) : null;
  const echo = options.console ?? true;
  const order = ['debug', 'info', 'warn', 'error'];
  const write = (lvl: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => {
    if (order.indexOf(lvl) < order.indexOf(level)) return;
    file?.[lvl](fields ?? {}, message);
    if (echo) process.stderr.write(`[${lvl}] ${message}${formatFields(fields)}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger that records everything in memory: for tests. */
export function memoryLogger(): Logger & { records: Array<{ level: string; message: string; fields?: Record<string, unknown> }> } {
  const records: Array<{ level: string; message: string; fields?: Record<string, unknown> }> = [];
  const rec = (level: string) => (message: string, fields?: Record<string, unknown>) => records.push({ level, message, fields });
  return { records, debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') };
}
