import type { CheckCase } from './check.ts';

export const optimChecks: CheckCase[] = [];
