export * from './types';
export * from './backbone';
export * from './loss';
export * from './tokens';
export * from './dataset';
export * from './scorer';
export * from './attention';
export * from './logger';
