import type { CheckCase } from './check.ts';

export const normChecks: CheckCase[] = [];
