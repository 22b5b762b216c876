import type { CheckCase } from './check.ts';

export const reduceChecks: CheckCase[] = [];
